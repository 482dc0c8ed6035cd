using System.Diagnostics;
using RAE.Models.Data;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Data;

public sealed class ShardPipelineTests(ITestOutputHelper output)
{
    [Fact]
    public void Center_cropped_batch_matches_the_transform_of_each_image_and_flips_mirror_it()
    {
        var images = new[]
        {
            new ShardImage("a.png", 2, TestImages.Png(12, 9, 1)),
            new ShardImage("b.png", 0, TestImages.GrayPng(7, 10, (x, y) => (byte)(x * 30 + y))),
        };
        var decoder = new SafeImageDecoder();

        var (batch, labels) = ShardImageBatch.CenterCropped(images, 6, decoder);
        using (batch)
        {
            Assert.Equal(new long[] { 2, 3, 6, 6 }, batch.shape);
            Assert.Equal(new long[] { 2, 0 }, labels);
            using var expected = ImageTransforms.AdmCenterCrop(decoder.Decode(images[1].Encoded).Image!, 6).ToTensor();
            using var second = batch[1];
            Assert.True(second.eq(expected).all().item<bool>());
            using var flipped = ShardImageBatch.Flipped(batch);
            using var mirrored = ImageTransforms.AdmCenterCrop(decoder.Decode(images[0].Encoded).Image!, 6).FlipHorizontal().ToTensor();
            using var firstFlipped = flipped[0];
            Assert.True(firstFlipped.eq(mirrored).all().item<bool>());
        }
    }

    [Fact]
    public void Latent_shard_round_trips_and_checks_the_latent_shape()
    {
        using var latents = randn(3, 4, 2, 2);
        using var flipped = randn(3, 4, 2, 2);
        var bytes = LatentShard.Write(latents, [5, 1, 7], flipped);

        using var shard = LatentShard.Read(bytes, "shard-00000", [4, 2, 2]);

        Assert.Equal(3, shard.Count);
        Assert.True(shard.Latents.eq(latents).all().item<bool>());
        Assert.True(shard.FlippedLatents!.eq(flipped).all().item<bool>());
        Assert.Equal(new long[] { 5, 1, 7 }, shard.Labels.data<long>().ToArray());
        var error = Assert.Throws<InvalidDataException>(() => LatentShard.Read(bytes, "shard-00000", [8, 2, 2]));
        Assert.Contains("misc.latent_size", error.Message);
        Assert.Contains("latents", Assert.Throws<InvalidDataException>(() => LatentShard.Write(latents, [1, 2])).Message);
    }

    [Fact]
    public void A_decode_that_outlasts_the_timeout_is_refused()
    {
        var decoder = new SafeImageDecoder(new ImageDecodeLimits { DecodeTimeout = TimeSpan.FromTicks(1) });

        var result = decoder.Decode(TestImages.Png(1500, 1500));

        Assert.False(result.Succeeded);
        Assert.Matches("longer than|cancelled after the time limit", result.Failure);
    }

    [FashionMnistFact]
    public void Fashion_mnist_test_split_builds_with_a_thousand_images_per_class()
    {
        var folder = TestImages.TemporaryFolder();
        var clock = Stopwatch.StartNew();
        var manifest = new DatasetBuilder(new DatasetBuildOptions { ShardSize = 2500 })
            .Build("fashion-test", ImageSources.Open(FashionMnistFactAttribute.Folder, "test"), new DirectoryDatasetSink(folder));
        var buildSeconds = clock.Elapsed.TotalSeconds;

        Assert.Equal(Enumerable.Repeat(1000, 10), manifest.CountsPerClass);
        Assert.Empty(manifest.Skipped);
        Assert.Equal(4, manifest.Shards.Count);

        clock.Restart();
        var shard = manifest.ReadShard(manifest.Shards[0], File.ReadAllBytes(Path.Combine(folder, manifest.Shards[0].File)));
        var (batch, _) = ShardImageBatch.CenterCropped(shard, 32, new SafeImageDecoder());
        batch.Dispose();
        var cropSeconds = clock.Elapsed.TotalSeconds;
        output.WriteLine($"fashion-mnist t10k: built 10000 images into {manifest.Shards.Count} shards in {buildSeconds:F2} s ({10000 / buildSeconds:F0} img/s); "
            + $"decode + ADM crop 28->32 of 2500 in {cropSeconds:F2} s ({2500 / cropSeconds:F0} img/s)");
    }
}
