using System.Text;
using RAE.Grains.Sampling;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Sampling;

public sealed class CheckpointConfigReaderTests
{
    private const string Yaml = "stage_2:\n  target: stage2.models.DDT.DiTwDDTHead\n";

    private static byte[] Payload(bool withMetadata)
    {
        using var scope = NewDisposeScope();
        var stream = new MemoryStream();
        SafeTensors.Save(stream,
            [KeyValuePair.Create("ema.w", full(1_000_000, 1f)), KeyValuePair.Create(CheckpointConfigReader.ConfigKey, tensor(Encoding.UTF8.GetBytes(Yaml)))],
            withMetadata ? new Dictionary<string, string> { ["config"] = Yaml } : null);
        return stream.ToArray();
    }

    [Fact]
    public async Task TheHeaderCopyIsReadWithoutTouchingTheWeights()
    {
        var payload = Payload(withMetadata: true);
        await using var stream = new ForwardOnlyStream(payload);
        Assert.Equal(Yaml, await CheckpointConfigReader.ReadConfigYamlAsync(stream, payload.Length, "checkpoint"));
        Assert.True(stream.BytesRead < 4096, $"read {stream.BytesRead} of {payload.Length} bytes");
    }

    [Fact]
    public async Task WithoutAHeaderCopyTheTensorIsReachedByReadingForward()
    {
        var payload = Payload(withMetadata: false);
        await using var stream = new ForwardOnlyStream(payload);
        Assert.Equal(Yaml, await CheckpointConfigReader.ReadConfigYamlAsync(stream, payload.Length, "checkpoint"));
        Assert.Equal(Yaml, CheckpointConfigReader.ReadConfigYaml(payload, "checkpoint"));
    }

    [Fact]
    public async Task ATruncatedPayloadIsRefusedByName()
    {
        var payload = Payload(withMetadata: false)[..5000];
        await using var stream = new ForwardOnlyStream(payload);
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => CheckpointConfigReader.ReadConfigYamlAsync(stream, payload.Length, "checkpoint of job 'j'"));
        Assert.Contains("checkpoint of job 'j'", error.Message);
    }

    /// <summary>A blob download: readable front to back only.</summary>
    private sealed class ForwardOnlyStream(byte[] data) : Stream
    {
        private readonly MemoryStream _inner = new(data, writable: false);
        public long BytesRead { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            var read = _inner.Read(buffer, offset, count);
            BytesRead += read;
            return read;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
