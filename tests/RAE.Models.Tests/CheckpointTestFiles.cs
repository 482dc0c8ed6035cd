using System.IO.Compression;
using System.Security.Cryptography;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>Paths and helpers shared by the checkpoint and array IO tests.</summary>
internal static class CheckpointTestFiles
{
    public static string PtFormats(string name) => Path.Combine(Fixtures.Case("pt_formats"), name);

    /// <summary>Synthetic torch.save files made by TestData/pt/make_synthetic_checkpoints.py (standard-library Python).</summary>
    public static string Synthetic(string name) => Path.Combine(AppContext.BaseDirectory, "TestData", "pt", name);

    public static string TemporaryPath(string extension) => Path.Combine(Path.GetTempPath(), $"rae-io-{Guid.NewGuid():N}{extension}");

    public static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public static void AssertBitExact(Tensor expected, Tensor actual, string name)
    {
        Assert.True(expected.dtype == actual.dtype, $"{name}: dtype {actual.dtype}, expected {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape), $"{name}: shape [{string.Join(",", actual.shape)}], expected [{string.Join(",", expected.shape)}]");
        using var expectedBytes = expected.contiguous();
        using var actualBytes = actual.contiguous();
        Assert.True(expectedBytes.bytes.SequenceEqual(actualBytes.bytes), $"{name}: values differ");
    }

    /// <summary>Writes a zip that looks like a torch.save archive with the given data.pkl bytes and storages.</summary>
    public static string WriteArchive(byte[] pickle, IReadOnlyDictionary<string, byte[]>? storages = null)
    {
        var path = TemporaryPath(".pt");
        using var archive = ZipFile.Open(path, ZipArchiveMode.Create);
        Write(archive, "archive/data.pkl", pickle);
        Write(archive, "archive/byteorder", "little"u8.ToArray());
        foreach (var (key, bytes) in storages ?? new Dictionary<string, byte[]>()) Write(archive, $"archive/data/{key}", bytes);
        return path;
    }

    public static void DisposeAll(IEnumerable<Tensor> tensors)
    {
        foreach (var tensor in tensors) tensor.Dispose();
    }

    private static void Write(ZipArchive archive, string name, byte[] bytes)
    {
        using var stream = archive.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(bytes);
    }
}
