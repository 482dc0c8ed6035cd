using RAE.Models.Data;

namespace RAE.Models.Tests.Data;

public sealed class DatasetBuilderTests
{
    [Fact]
    public void Image_folder_classes_are_sorted_sub_folders_and_files_follow_walk_order()
    {
        var root = TestImages.TemporaryFolder();
        Write(root, "zebra/b.png", TestImages.Png(4, 4));
        Write(root, "Apple/x.png", TestImages.Png(4, 4));
        Write(root, "apple/sub/a.png", TestImages.Png(4, 4));
        Write(root, "apple/b.png", TestImages.Png(4, 4));
        Write(root, "apple/a.png", TestImages.Png(4, 4));
        Write(root, "apple/.hidden.png", TestImages.Png(4, 4));

        var source = ImageFolderSource.Open(root);

        Assert.Equal(new[] { "Apple", "apple", "zebra" }, source.Classes);
        Assert.Equal(new[] { "Apple/x.png:0", "apple/a.png:1", "apple/b.png:1", "apple/sub/a.png:1", "zebra/b.png:2" },
            source.Images().Select(image => $"{image.Name}:{image.Label}"));
    }

    [Fact]
    public void Good_images_are_sharded_and_every_bad_file_is_reported_by_name()
    {
        var root = TestImages.TemporaryFolder();
        for (var i = 0; i < 7; i++) Write(root, $"cat/{i:D2}.png", TestImages.Png(6, 5, (byte)i));
        for (var i = 0; i < 6; i++) Write(root, $"dog/{i:D2}.jpg", TestImages.Jpeg(8, 8));
        Write(root, "cat/corrupt.jpg", TestImages.CorruptJpeg());
        Write(root, "cat/truncated.png", TestImages.TruncatedPng());
        Write(root, "dog/empty.png", []);
        Write(root, "dog/huge.png", TestImages.HugeHeaderPng(30000, 30000));
        Write(root, "dog/notes.txt", TestImages.Text("not an image"));
        var output = TestImages.TemporaryFolder();

        var manifest = new DatasetBuilder(new DatasetBuildOptions { ShardSize = 4, MaxBadFraction = 0.5 })
            .Build("pets", ImageFolderSource.Open(root), new DirectoryDatasetSink(output));

        Assert.Equal(new[] { 7, 6 }, manifest.CountsPerClass);
        Assert.Equal(new[] { 4, 4, 4, 1 }, manifest.Shards.Select(shard => shard.Images));
        Assert.Equal(new[] { "cat/corrupt.jpg", "cat/truncated.png", "dog/empty.png", "dog/huge.png", "dog/notes.txt" },
            manifest.Skipped.Select(item => item.Name));
        Assert.All(manifest.Skipped, item => Assert.False(string.IsNullOrWhiteSpace(item.Reason)));

        var reread = DatasetManifest.FromJson(File.ReadAllText(Path.Combine(output, DatasetManifest.FileName)), "manifest");
        var images = reread.Shards.SelectMany(shard => reread.ReadShard(shard, File.ReadAllBytes(Path.Combine(output, shard.File)))).ToList();
        Assert.Equal(13, images.Count);
        Assert.Equal("cat/00.png", images[0].Name);
        Assert.Equal(File.ReadAllBytes(Path.Combine(root, "dog/05.jpg")), images[^1].Encoded);
        Assert.Equal(1, images[^1].Label);
    }

    [Fact]
    public void Building_twice_gives_identical_shards_and_manifest()
    {
        var root = TestImages.TemporaryFolder();
        for (var i = 0; i < 5; i++) Write(root, $"a/{i}.png", TestImages.Png(3, 3, (byte)i));
        var first = TestImages.TemporaryFolder();
        var second = TestImages.TemporaryFolder();
        var builder = new DatasetBuilder(new DatasetBuildOptions { ShardSize = 2 });

        builder.Build("d", ImageFolderSource.Open(root), new DirectoryDatasetSink(first));
        builder.Build("d", ImageFolderSource.Open(root), new DirectoryDatasetSink(second));

        foreach (var file in Directory.GetFiles(first).Select(Path.GetFileName))
            Assert.Equal(File.ReadAllBytes(Path.Combine(first, file!)), File.ReadAllBytes(Path.Combine(second, file!)));
    }

    [Fact]
    public void Too_many_bad_files_refuse_the_dataset_with_the_list_and_leave_nothing_behind()
    {
        var root = TestImages.TemporaryFolder();
        Write(root, "a/good.png", TestImages.Png(3, 3));
        Write(root, "a/bad1.png", TestImages.TruncatedPng());
        Write(root, "a/bad2.png", []);
        var output = TestImages.TemporaryFolder();

        var error = Assert.Throws<DatasetRefusedException>(() =>
            new DatasetBuilder(new DatasetBuildOptions { ShardSize = 1, MaxBadFraction = 0.5 }).Build("x", ImageFolderSource.Open(root), new DirectoryDatasetSink(output)));

        Assert.Equal(new[] { "a/bad1.png", "a/bad2.png" }, error.Skipped.Select(item => item.Name));
        Assert.Contains("a/bad2.png", error.Message);
        Assert.Empty(Directory.GetFiles(output));
    }

    [Fact]
    public void A_tampered_shard_fails_its_checksum()
    {
        var root = TestImages.TemporaryFolder();
        Write(root, "a/good.png", TestImages.Png(3, 3));
        var output = TestImages.TemporaryFolder();
        var manifest = new DatasetBuilder().Build("t", ImageFolderSource.Open(root), new DirectoryDatasetSink(output));
        var bytes = File.ReadAllBytes(Path.Combine(output, manifest.Shards[0].File));
        bytes[^1] ^= 1;

        var error = Assert.Throws<InvalidDataException>(() => manifest.ReadShard(manifest.Shards[0], bytes));
        Assert.Contains("checksum", error.Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_files_become_grayscale_pngs_with_their_labels(bool gzip)
    {
        var folder = TestImages.TemporaryFolder();
        TestImages.WriteIdx(folder, "t10k", 5, 4, 3, index => (byte)(index % 3), gzip);

        var source = ImageSources.Open(folder, "test");
        var output = TestImages.TemporaryFolder();
        var manifest = new DatasetBuilder(new DatasetBuildOptions { ShardSize = 2 }).Build("idx", source, new DirectoryDatasetSink(output));

        Assert.Equal(new[] { "0", "1", "2" }, manifest.Classes);
        Assert.Equal(new[] { 2, 2, 1 }, manifest.CountsPerClass);
        var images = manifest.Shards.SelectMany(shard => manifest.ReadShard(shard, File.ReadAllBytes(Path.Combine(output, shard.File)))).ToList();
        var decoded = new SafeImageDecoder().Decode(images[4].Encoded).Image!;
        Assert.Equal((3, 4), (decoded.Width, decoded.Height));
        Assert.Equal(TestImages.IdxPixel(4, 2, 1), decoded[1, 2, 0]);
        Assert.Equal(TestImages.IdxPixel(4, 2, 1), decoded[1, 2, 2]);
        Assert.Equal(1, images[4].Label);
    }

    [Fact]
    public void Idx_with_mismatched_counts_or_missing_labels_is_a_clear_error()
    {
        var folder = TestImages.TemporaryFolder();
        TestImages.WriteIdx(folder, "train", 3, 2, 2, _ => 0, gzip: false);
        File.Delete(Path.Combine(folder, "train-labels-idx1-ubyte"));
        Assert.Contains("labels file", Assert.Throws<FileNotFoundException>(() => ImageSources.Open(folder)).Message);

        Assert.Contains("dataset source not found", Assert.Throws<DirectoryNotFoundException>(() => ImageSources.Open(Path.Combine(folder, "missing"))).Message);
        Assert.Contains("no t10k-images", Assert.Throws<FileNotFoundException>(() => IdxImageSource.Open(folder, "test")).Message);
        var folderWithBadMagic = TestImages.TemporaryFolder();
        TestImages.WriteIdx(folderWithBadMagic, "train", 2, 2, 2, _ => 0, gzip: false);
        var images = Path.Combine(folderWithBadMagic, "train-images-idx3-ubyte");
        var bytes = File.ReadAllBytes(images);
        bytes[3] = 0x01;
        File.WriteAllBytes(images, bytes);
        Assert.Contains("IDX magic", Assert.Throws<InvalidDataException>(() => ImageSources.Open(folderWithBadMagic)).Message);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Idx_declared_sizes_cost_nothing_until_the_bytes_arrive(bool gzip)
    {
        // Two labels for images declared 2 x 32768 x 32768 (2 GiB) in a file of a few bytes: truncated, not allocated.
        var folder = TestImages.TemporaryFolder();
        TestImages.WriteIdx(folder, "train", 2, 2, 2, _ => 0, gzip);
        var images = Path.Combine(folder, "train-images-idx3-ubyte" + (gzip ? ".gz" : ""));
        var header = new byte[16];
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, 0x803);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), 2);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), 32768);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), 32767);
        WriteIdxBytes(images, [.. header, 1, 2, 3], gzip);
        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<InvalidDataException>(() => IdxImageSource.Open(images));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 16 << 20, "the reader allocated from the declared size");
        Assert.Contains($"declares {2L * 32768 * 32767} bytes of data, the file holds 3", error.Message);

        // Dimensions whose product passes 2^31 (and, multiplied naively, 2^64) are refused by name.
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), 16);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(8), int.MaxValue);
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(12), int.MaxValue);
        WriteIdxBytes(images, header, gzip);
        Assert.Contains("declare more than", Assert.Throws<InvalidDataException>(() => IdxImageSource.Open(images)).Message);
    }

    private static void WriteIdxBytes(string path, byte[] bytes, bool gzip)
    {
        using var file = File.Create(path);
        using Stream stream = gzip ? new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest) : file;
        stream.Write(bytes);
    }

    [Fact]
    public void Real_fashion_mnist_opens_when_installed()
    {
        const string folder = "/usr/share/datasets/fashion-mnist";
        if (!Directory.Exists(folder)) return; // the Debian package dataset-fashion-mnist is optional on test machines
        var source = IdxImageSource.Open(folder, "test");
        Assert.Equal(10000, source.Count);
        Assert.Equal(10, source.Classes.Count);
        var first = source.Images().First();
        Assert.Equal((28, 28), Decoded(first.ReadBytes()));
    }

    private static (int, int) Decoded(byte[] bytes)
    {
        var image = new SafeImageDecoder().Decode(bytes).Image!;
        return (image.Width, image.Height);
    }

    private static void Write(string root, string relative, byte[] bytes)
    {
        var path = Path.Combine(root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
    }
}
