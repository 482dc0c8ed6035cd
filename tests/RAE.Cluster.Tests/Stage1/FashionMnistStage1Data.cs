using RAE.Client.Demo;
using RAE.Grains.Storage;
using RAE.Grains.Workers.Stage1;
using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>
/// Real images for Stage 1 tests: the first images per class of Debian's Fashion-MNIST IDX files (28x28 grayscale),
/// written into a blob store as one-shard datasets. A test that needs them fails, naming the package, when they are absent
/// (<c>.ci/run</c> installs it), rather than passing on generated images.
/// </summary>
internal static class FashionMnistStage1Data
{
    /// <summary>Fails the calling test with the missing files and the Debian package when Fashion-MNIST is not installed.</summary>
    public static void Require()
    {
        var missing = FashionMnistFiles.Missing(FashionMnistFiles.DebianFolder);
        if (missing.Count > 0)
            throw new Xunit.Sdk.XunitException("this test trains on real images: " + FashionMnistFiles.MissingMessage(FashionMnistFiles.DebianFolder, missing));
    }

    /// <summary>Writes the first <paramref name="perClass"/> images of each class of a split (train or t10k); returns the image count.</summary>
    public static async Task<int> WriteAsync(IBlobStore store, string name, string split, int perClass)
    {
        Require();
        var source = new BalancedSubsetSource(IdxImageSource.Open(FashionMnistFiles.DebianFolder, split, FashionMnistFiles.ClassNames), perClass);
        var images = source.Images().Select(image => new ShardImage(image.Name, image.Label, image.ReadBytes())).ToList();
        await DecoderTestJobs.WriteImagesAsync(store, name, images, source.Classes, source.Description);
        return images.Count;
    }

    /// <summary>
    /// All images of a dataset written by <see cref="WriteAsync"/> as [n,3,size,size] in [0,1], under the Stage 1 training
    /// transform (resize, then a random crop drawn from the seed), so that held-out images look like the training batches.
    /// </summary>
    public static Tensor Images(IBlobStore store, string name, int count, int size, long seed)
    {
        var stream = new DatasetImageStream(store, name, size, seed, count, count);
        return stream.Batch(1, 0, count, CPU);
    }
}
