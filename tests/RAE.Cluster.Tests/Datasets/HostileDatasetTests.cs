using System.Buffers.Binary;
using RAE.Client.Cluster;
using RAE.Client.Commands;
using RAE.Cluster.Tests.Checkpoints;
using RAE.GrainInterfaces;
using RAE.Models.Data;

namespace RAE.Cluster.Tests.Datasets;

/// <summary>
/// The issue's acceptance set: an ImageFolder with a corrupt JPEG, a truncated PNG, a zero-byte file, a PNG whose
/// header claims 30000x30000 pixels and a non-image among 50 good images. The good ones are added, each bad one is
/// reported by name with its reason, and the silo keeps serving.
/// </summary>
internal static class HostileDataset
{
    public static async Task RunAsync(IGrainFactory grains, Func<string, Task<bool>> blobExists)
    {
        using var folder = new TestImageFolder();
        folder.AddImages("alpha", 25);
        var good = folder.AddImages("beta", 25);
        var png = folder.Read(good[0]);
        var bad = new Dictionary<string, string>
        {
            [folder.AddFile("alpha/corrupt.jpg", [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, (byte)'J', (byte)'F', (byte)'I', (byte)'F', 0, 1, 0xDE, 0xAD, 0xBE, 0xEF])] = "",
            [folder.AddFile("alpha/truncated.png", png[..(png.Length / 2)])] = "",
            [folder.AddFile("beta/empty.png", [])] = "empty file",
            [folder.AddFile("beta/huge.png", PngHeader(30000, 30000))] = "30000x30000 = 900000000 pixels exceeds the limit",
            [folder.AddFile("beta/readme.txt", "hello, not an image"u8.ToArray())] = "not a recognised image format",
        };
        var name = $"hostile-{Guid.NewGuid().ToString("N")[..8]}";
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exitCode = await DatasetsAddCommand.AddAsync(grains, name, ImageSources.Open(folder.Root),
            new DatasetBuildOptions { ShardSize = 16 }, new CommandContext(output, error, false, false, CancellationToken.None));

        Assert.True(exitCode == 0, error.ToString());
        var shown = await grains.GetGrain<IDatasetGrain>(name).Describe();
        Assert.Equal([25, 25], shown.CountsPerClass);
        Assert.Equal([16, 16, 16, 2], shown.Shards.Select(s => s.Images));
        Assert.Equal(bad.Keys.Order(StringComparer.Ordinal), shown.Skipped.Select(s => s.Name).Order(StringComparer.Ordinal));
        foreach (var (file, reason) in bad)
        {
            var line = output.ToString().Split('\n').Single(l => l.Contains($"skipped {file}: ", StringComparison.Ordinal));
            Assert.Contains(reason, line);
            Assert.Contains(reason, shown.Skipped.Single(s => s.Name == file).Reason);
        }
        Assert.True(await grains.GetGrain<IDatasetGrain>(name).Remove());
        Assert.False(await blobExists($"datasets/{name}/{DatasetManifest.FileName}"));
    }

    /// <summary>A PNG signature and a valid IHDR chunk (CRC included) claiming the given size, with no image data.</summary>
    private static byte[] PngHeader(int width, int height)
    {
        var chunk = new byte[17];
        "IHDR"u8.CopyTo(chunk);
        BinaryPrimitives.WriteInt32BigEndian(chunk.AsSpan(4), width);
        BinaryPrimitives.WriteInt32BigEndian(chunk.AsSpan(8), height);
        chunk[12] = 8; // bit depth
        chunk[13] = 2; // colour type: RGB
        var file = new List<byte> { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13 };
        file.AddRange(chunk);
        var crc = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(crc, Crc32(chunk));
        file.AddRange(crc);
        return [.. file];
    }

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var value in bytes)
        {
            crc ^= value;
            for (var bit = 0; bit < 8; bit++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
        }
        return ~crc;
    }
}

[Collection(FileSystemStorageClusterCollection.Name)]
public sealed class HostileDatasetFileSystemTests(FileSystemStorageCluster cluster)
{
    [Fact]
    public Task GoodImagesAreAddedAndEachBadOneIsReportedByName() =>
        HostileDataset.RunAsync(cluster.Grains, path => cluster.Store.ExistsAsync(path));
}

[Collection(AzuriteStorageClusterCollection.Name)]
public sealed class HostileDatasetAzuriteTests(AzuriteStorageCluster cluster)
{
    [Fact]
    public Task GoodImagesAreAddedAndEachBadOneIsReportedByName() =>
        HostileDataset.RunAsync(cluster.Grains, path => cluster.Store.ExistsAsync(path));
}
