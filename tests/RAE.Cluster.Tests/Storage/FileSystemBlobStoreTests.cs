using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Storage;

public sealed class FileSystemBlobStoreTests : BlobStoreContractTests
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "rae-fs-store-tests", Guid.NewGuid().ToString("N"));

    protected override IBlobStore CreateStore() => new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root });

    protected override IBlobStore CreateUnreachableStore(BlobStoreRetryOptions retry)
    {
        // The root's parent is a regular file, so the folder can never be created (like an unmounted share).
        Directory.CreateDirectory(root);
        var notAFolder = Path.Combine(root, "not-a-folder");
        File.WriteAllText(notAFolder, "occupied");
        return new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = Path.Combine(notAFolder, "store"), Retry = retry });
    }

    protected override async Task CorruptStoredBytesAsync(string path)
    {
        await using var file = new FileStream(BlobFile(path), FileMode.Open, FileAccess.ReadWrite);
        file.Position = file.Length / 3;
        var original = file.ReadByte();
        file.Position--;
        file.WriteByte((byte)(original ^ 0x5A));
    }

    protected override Task KillWriterMidUploadAsync(string path, int totalBytes) =>
        TornWriterProcess.RunAndKillMidUploadAsync("fs", path, totalBytes, stallAfter: totalBytes / 2, root);

    protected override Task AssertUncommittedUploadLeftBehindAsync(string path)
    {
        var staged = Directory.GetFiles(Path.Combine(root, ".staging"), "*.tmp");
        Assert.Single(staged);
        Assert.True(new FileInfo(staged[0]).Length > 1024 * 1024, "the killed writer should have staged megabytes");
        return Task.CompletedTask;
    }

    public override Task DisposeAsync()
    {
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        return Task.CompletedTask;
    }

    private string BlobFile(string path) => Path.Combine(root, path.Replace('/', Path.DirectorySeparatorChar));

    [Fact]
    public async Task Truncated_file_is_reported_as_damaged_not_returned()
    {
        await Store.PutBytesAsync("latents/a.bin", TestBytes.Deterministic(5000, 20));
        await using (var file = new FileStream(BlobFile("latents/a.bin"), FileMode.Open, FileAccess.ReadWrite))
            file.SetLength(file.Length - 10);

        var damaged = await Assert.ThrowsAsync<BlobCorruptedException>(() => Store.GetAsync("latents/a.bin"));

        Assert.Contains("latents/a.bin", damaged.Message);
    }

    [Fact]
    public async Task Blob_and_folder_of_the_same_name_are_refused_clearly()
    {
        await Store.PutBytesAsync("a/b", new byte[] { 1 });

        var refused = await Assert.ThrowsAsync<ArgumentException>(() => Store.PutBytesAsync("a/b/c", new byte[] { 2 }));

        Assert.Contains("'a/b'", refused.Message);
    }

    [Fact]
    public async Task Pointer_lock_held_by_another_writer_times_out_as_a_concurrency_failure()
    {
        var store = new FileSystemBlobStore(new FileSystemBlobStoreOptions { RootPath = root, LockTimeout = TimeSpan.FromMilliseconds(300) });
        await store.TryUpdatePointerAsync("jobs/x/latest", "v1", null);
        var lockFile = Directory.GetFiles(Path.Combine(root, ".locks")).Single();
        var etag = (await store.ReadPointerAsync("jobs/x/latest"))!.ETag;

        await using (new FileStream(lockFile, FileMode.Open, FileAccess.ReadWrite, FileShare.None))
        {
            var blocked = await Assert.ThrowsAsync<BlobConcurrencyException>(() =>
                store.TryUpdatePointerAsync("jobs/x/latest", "v2", etag));
            Assert.Contains("locked", blocked.Message);
        }

        Assert.Equal("v1", (await store.ReadPointerAsync("jobs/x/latest"))!.Value);
    }

    [Fact]
    public async Task Start_up_check_removes_stale_staged_files_only()
    {
        var staging = Path.Combine(root, ".staging");
        var stale = Path.Combine(staging, "dead-writer.tmp");
        var fresh = Path.Combine(staging, "live-writer.tmp");
        await File.WriteAllBytesAsync(stale, new byte[10]);
        await File.WriteAllBytesAsync(fresh, new byte[10]);
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow - TimeSpan.FromDays(2));

        await Store.EnsureAvailableAsync();

        Assert.False(File.Exists(stale));
        Assert.True(File.Exists(fresh));
    }
}
