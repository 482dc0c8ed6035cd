using RAE.Models.Data;

namespace RAE.Models.Tests.Data;

public sealed class LocalDatasetTests
{
    [Fact]
    public void A_built_folder_reopens_with_every_image_in_order()
    {
        var root = TestImages.TemporaryFolder();
        for (var i = 0; i < 5; i++)
        {
            Directory.CreateDirectory(Path.Combine(root, $"c{i % 2}"));
            File.WriteAllBytes(Path.Combine(root, $"c{i % 2}", $"{i}.png"), TestImages.Png(3, 3, (byte)i));
        }
        var folder = TestImages.TemporaryFolder();
        new DatasetBuilder(new DatasetBuildOptions { ShardSize = 2 }).Build("small", ImageFolderSource.Open(root), new DirectoryDatasetSink(folder));

        var dataset = LocalDataset.Open(folder);

        Assert.Equal("small", dataset.Manifest.Name);
        Assert.Equal(new[] { "c0/0.png", "c0/2.png", "c0/4.png", "c1/1.png", "c1/3.png" }, dataset.Images().Select(image => image.Name));
        dataset.Manifest.EnsureFitsClasses(2);
        Assert.Contains("num_classes is 1", Assert.Throws<InvalidDataException>(() => dataset.Manifest.EnsureFitsClasses(1)).Message);
        Assert.Contains("no shard 3", Assert.Throws<ArgumentOutOfRangeException>(() => dataset.ReadShard(3)).Message);

        File.Delete(Path.Combine(folder, DatasetBuilder.ShardFileName(1)));
        Assert.Contains("missing its shard shard-00001.bin", Assert.Throws<FileNotFoundException>(() => dataset.ReadShard(1)).Message);
    }

    [Fact]
    public void A_folder_without_a_manifest_or_with_a_broken_one_is_a_clear_error()
    {
        var folder = TestImages.TemporaryFolder();
        Assert.Contains("manifest.json is missing", Assert.Throws<FileNotFoundException>(() => LocalDataset.Open(folder)).Message);

        File.WriteAllText(Path.Combine(folder, DatasetManifest.FileName), "{ not json");
        Assert.Contains("not a valid dataset manifest", Assert.Throws<InvalidDataException>(() => LocalDataset.Open(folder)).Message);
    }
}
