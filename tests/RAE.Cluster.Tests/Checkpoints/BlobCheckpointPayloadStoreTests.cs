using RAE.GrainInterfaces;
using RAE.Grains.Checkpoints;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Checkpoints;

public sealed class BlobCheckpointPayloadStoreTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "rae-ckpt-store-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly FileSystemBlobStore _blobs;
    private readonly BlobCheckpointPayloadStore _store;

    public BlobCheckpointPayloadStoreTests()
    {
        _blobs = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = _root });
        _store = new BlobCheckpointPayloadStore(_blobs);
    }

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task PayloadIsABlobAtTheJobsCheckpointPathAndReadsBackVerified()
    {
        byte[] payload = [1, 2, 3, 4, 5, 6, 7];
        var info = await _store.WriteAsync("train-a", 12, payload, 0.25);
        Assert.Equal("checkpoints/train-a/step-000000012.ckpt", info.Location);
        Assert.Equal(("train-a", 12L, 7L, 0.25), (info.JobId, info.Step, info.SizeBytes, info.Loss));
        Assert.Equal((await _blobs.GetInfoAsync(info.Location)).Sha256, info.Sha256);
        Assert.Equal(payload, await _store.ReadAsync(info));
        await using var stream = await _store.OpenReadAsync(info);
        var streamed = new MemoryStream();
        await stream.CopyToAsync(streamed);
        Assert.Equal(payload, streamed.ToArray());

        await _store.DeleteAsync(info);
        var missing = await Assert.ThrowsAsync<FileNotFoundException>(() => _store.ReadAsync(info));
        Assert.Contains("'train-a' at step 12 is missing", missing.Message);
    }

    [Fact]
    public async Task CorruptOrReplacedPayloadIsRefused()
    {
        var info = await _store.WriteAsync("train-b", 3, new byte[100], null);
        var file = Path.Combine(_root, info.Location);
        var bytes = await File.ReadAllBytesAsync(file);
        bytes[50] ^= 0xFF;
        await File.WriteAllBytesAsync(file, bytes);
        Assert.Contains("corrupt", (await Assert.ThrowsAsync<InvalidDataException>(() => _store.ReadAsync(info))).Message);

        var replaced = await _store.WriteAsync("train-b", 3, new byte[100], null) with { Sha256 = new string('0', 64) };
        Assert.Contains("the catalog says", (await Assert.ThrowsAsync<InvalidDataException>(() => _store.ReadAsync(replaced))).Message);
        Assert.Contains("the catalog says", (await Assert.ThrowsAsync<InvalidDataException>(() => _store.OpenReadAsync(replaced))).Message);
    }

    [Theory]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData(".hidden")]
    [InlineData(" ")]
    public async Task JobIdsThatCannotNameAFolderAreRefused(string jobId)
    {
        var error = await Assert.ThrowsAnyAsync<ArgumentException>(() => _store.WriteAsync(jobId, 1, [1], null));
        Assert.Contains(jobId.Trim().Length == 0 ? "jobId" : $"'{jobId}'", error.Message);
        Assert.False(Directory.Exists(Path.Combine(_root, BlobCheckpointPayloadStore.Root)));
    }

    [Fact]
    public async Task LocationFromBeforeTheBlobStoreIsNamedAsUnreadable()
    {
        var old = new CheckpointInfo("train-c", 4, "/data/checkpoints/train-c/step-000000004.ckpt", 10, "00", null, DateTimeOffset.UtcNow);
        var error = await Assert.ThrowsAsync<InvalidDataException>(() => _store.ReadAsync(old));
        Assert.Contains("not a blob path", error.Message);
    }
}
