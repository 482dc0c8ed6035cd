using System.Security.Cryptography;
using RAE.Grains.Collectives;
using RAE.Grains.Collectives.Ring;

namespace RAE.Cluster.Tests.Collectives;

/// <summary>The sealed data frames of a TLS ring connection: what one end seals only the other end of that connection opens,
/// in order, unchanged.</summary>
public sealed class RingFrameCipherTests
{
    private static readonly byte[] ConnectorShare = RandomNumberGenerator.GetBytes(RingFrameCipher.ShareBytes);
    private static readonly byte[] AcceptorShare = RandomNumberGenerator.GetBytes(RingFrameCipher.ShareBytes);
    private const string Group = "job-1/g0";

    private static (byte[] Header, byte[] Plain, byte[] Cipher, byte[] Tag) Seal(RingFrameCipher cipher, int index, int bytes = 4096)
    {
        var header = new byte[16];
        BitConverter.TryWriteBytes(header.AsSpan(8), index);
        var plain = RandomNumberGenerator.GetBytes(bytes);
        var sealedBytes = new byte[bytes];
        var tag = new byte[RingFrameCipher.TagBytes];
        cipher.Seal(header, plain, sealedBytes, tag);
        return (header, plain, sealedBytes, tag);
    }

    [Fact]
    public void TheOtherEndOpensEachFrameInOrderAndTheWireNeverCarriesThePlaintext()
    {
        using var sender = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        using var receiver = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        for (var index = 0; index < 3; index++)
        {
            var frame = Seal(sender, index);
            Assert.NotEqual(frame.Plain, frame.Cipher);
            var opened = new byte[frame.Plain.Length];
            receiver.Open(frame.Header, frame.Cipher, frame.Tag, opened, "rank 0");
            Assert.Equal(frame.Plain, opened);
        }
    }

    [Theory]
    [InlineData("payload")]
    [InlineData("header")]
    [InlineData("tag")]
    public void AnAlteredFrameFailsToOpen(string altered)
    {
        using var sender = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        using var receiver = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        var frame = Seal(sender, 0);
        var target = altered switch { "payload" => frame.Cipher, "header" => frame.Header, _ => frame.Tag };
        target[target.Length / 2] ^= 0x01;
        var error = Assert.Throws<CollectiveException>(() => receiver.Open(frame.Header, frame.Cipher, frame.Tag, new byte[frame.Plain.Length], "rank 0"));
        Assert.Contains("frame 0 from rank 0 failed authentication", error.Message);
    }

    [Fact]
    public void AReorderedOrReplayedFrameFailsToOpen()
    {
        using var sender = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        using var receiver = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        var first = Seal(sender, 0);
        var second = Seal(sender, 1);
        Assert.Throws<CollectiveException>(() => receiver.Open(second.Header, second.Cipher, second.Tag, new byte[second.Plain.Length], "rank 0"));

        using var replayed = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        replayed.Open(first.Header, first.Cipher, first.Tag, new byte[first.Plain.Length], "rank 0");
        Assert.Throws<CollectiveException>(() => replayed.Open(first.Header, first.Cipher, first.Tag, new byte[first.Plain.Length], "rank 0"));
    }

    [Fact]
    public void AnotherConnectionsKeyOpensNothing()
    {
        using var sender = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, Group);
        var frame = Seal(sender, 0);
        using var otherShares = RingFrameCipher.Derive(RandomNumberGenerator.GetBytes(RingFrameCipher.ShareBytes), AcceptorShare, Group);
        Assert.Throws<CollectiveException>(() => otherShares.Open(frame.Header, frame.Cipher, frame.Tag, new byte[frame.Plain.Length], "rank 0"));
        using var otherGroup = RingFrameCipher.Derive(ConnectorShare, AcceptorShare, "job-1/g1");
        Assert.Throws<CollectiveException>(() => otherGroup.Open(frame.Header, frame.Cipher, frame.Tag, new byte[frame.Plain.Length], "rank 0"));
        Assert.Throws<ArgumentException>(() => RingFrameCipher.Derive(new byte[16], AcceptorShare, Group));
    }
}
