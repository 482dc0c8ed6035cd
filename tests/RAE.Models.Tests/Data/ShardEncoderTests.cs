using RAE.Configuration;
using RAE.Models.Data;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Encoders;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Data;

/// <summary>
/// <see cref="ShardEncoder"/> with the offline ResNet18 at 64 px: bad images are skipped and named, the latents are the
/// RAE encode of the ADM-cropped images (bit for bit), flips are the encode of the mirrors, and the moments cover both.
/// </summary>
public sealed class ShardEncoderTests : IDisposable
{
    private readonly IRepresentationEncoder _encoder =
        FrozenEncoders.FromConfig(new RaeParams { EncoderCls = RaeParams.ResNet18, EncoderInputSize = 64 });

    public void Dispose() => (_encoder as IDisposable)?.Dispose();

    private static IReadOnlyList<ShardImage> Shard() =>
    [
        new("a/wide.png", 0, TestImages.Png(40, 30, seed: 3)),
        new("a/broken.jpg", 0, TestImages.CorruptJpeg()),
        new("b/square.png", 1, TestImages.Png(32, 32, seed: 9)),
        new("b/cut.png", 1, TestImages.TruncatedPng()),
        new("b/gray.png", 1, TestImages.GrayPng(28, 28, (x, y) => (byte)(x * 9 + y))),
    ];

    /// <summary>The RAE encode (spec §2.2) of the good images, written out step by step.</summary>
    private Tensor Expected(bool mirrored)
    {
        using var scope = NewDisposeScope();
        var decoder = new SafeImageDecoder();
        var images = Shard().Where((_, index) => index is 0 or 2 or 4)
            .Select(image => ImageTransforms.AdmCenterCrop(decoder.Decode(image.Encoded).Image!, 64).ToTensor()).ToArray();
        var batch = stack(images);
        if (mirrored) batch = batch.flip(-1);
        var normalised = (batch - tensor(_encoder.ImageMean.ToArray(), [1, 3, 1, 1])) / tensor(_encoder.ImageStd.ToArray(), [1, 3, 1, 1]);
        using var noGrad = no_grad();
        return RepresentationAutoencoder.TokensToGrid(_encoder.Encode(normalised)).contiguous().MoveToOuterDisposeScope();
    }

    [Fact]
    public void BadImagesAreSkippedByNameAndTheLatentsAreTheRaeEncodeOfTheCroppedImages()
    {
        var encoder = new ShardEncoder(_encoder, new ShardEncoderOptions(64, BatchSize: 8));
        using var encoded = encoder.Encode(Shard(), classCount: 2);

        Assert.Equal([512L, 2, 2], encoder.LatentShape);
        Assert.Equal(3, encoded.Count);
        Assert.Equal([1, 2], encoded.CountsPerClass);
        Assert.Equal(["a/broken.jpg", "b/cut.png"], encoded.Skipped.Select(s => s.Name));
        Assert.All(encoded.Skipped, s => Assert.False(string.IsNullOrWhiteSpace(s.Reason)));
        using var shard = LatentShard.Read(encoded.Bytes, "encoded shard", [512, 2, 2]);
        Assert.Null(shard.FlippedLatents);
        Assert.Equal([0L, 1, 1], shard.Labels.data<long>().ToArray());
        using var expected = Expected(mirrored: false);
        Assert.True(expected.equal(shard.Latents).all().item<bool>(), "the latents differ from the step-by-step RAE encode");
        // normalize: true standardises every token over its 512 channels.
        using var channelMean = shard.Latents.mean([1L]);
        Assert.True(channelMean.abs().max().item<float>() < 1e-4f);
        using var moments = LatentMoments.Of(shard.Latents);
        using var mean = moments.Mean.sub(encoded.Moments.Mean);
        Assert.Equal(3, encoded.Moments.Count);
        Assert.True(mean.abs().max().item<double>() < 1e-12);
    }

    [Fact]
    public void FlipsAreTheEncodeOfTheMirrorsAndBatchesDoNotChangeTheBytesBf16IsStoredOnce()
    {
        using var oneBatch = new ShardEncoder(_encoder, new ShardEncoderOptions(64, BatchSize: 8, Flip: true)).Encode(Shard(), 2);
        using var shard = LatentShard.Read(oneBatch.Bytes, "flipped shard");
        using var expected = Expected(mirrored: true);
        Assert.True(expected.equal(shard.FlippedLatents!).all().item<bool>(), "flipped latents differ from the encode of the mirrored images");
        using var both = cat([shard.Latents, shard.FlippedLatents!], 0);
        using var direct = LatentMoments.Of(both);
        Assert.Equal(6, oneBatch.Moments.Count);
        using var difference = direct.SumOfSquaredDeviations.sub(oneBatch.Moments.SumOfSquaredDeviations).abs().max();
        Assert.True(difference.item<double>() <= 1e-9 * direct.SumOfSquaredDeviations.abs().max().item<double>());

        using var bf16 = new ShardEncoder(_encoder, new ShardEncoderOptions(64, BatchSize: 8, StoreBFloat16: true)).Encode(Shard(), 2);
        using var rounded = LatentShard.Read(bf16.Bytes, "bf16 shard");
        Assert.Equal(ScalarType.BFloat16, rounded.Latents.dtype);
        using var fromFloat = shard.Latents.to(ScalarType.BFloat16);
        Assert.True(fromFloat.equal(rounded.Latents).all().item<bool>());
    }

    [Fact]
    public void AShardOfOnlyBadImagesGivesAnEmptyShardAndALabelOutsideTheClassesIsNamed()
    {
        var encoder = new ShardEncoder(_encoder, new ShardEncoderOptions(64));
        using var empty = encoder.Encode([new ShardImage("x.png", 0, [])], 1);
        Assert.Equal((0, 0L), (empty.Count, empty.Moments.Count));
        using (var shard = LatentShard.Read(empty.Bytes, "empty shard")) Assert.Equal([0L, 512, 2, 2], shard.Latents.shape);
        Assert.Equal("x.png", Assert.Single(empty.Skipped).Name);

        var error = Assert.Throws<InvalidDataException>(() => encoder.Encode([new ShardImage("c/odd.png", 5, TestImages.Png(8, 8))], 2));
        Assert.Contains("c/odd.png", error.Message);
        Assert.Throws<ArgumentException>(() => new ShardEncoder(_encoder, new ShardEncoderOptions(48)));
    }
}
