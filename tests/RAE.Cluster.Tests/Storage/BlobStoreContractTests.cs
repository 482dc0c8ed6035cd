using System.Diagnostics;
using System.Security.Cryptography;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Storage;

/// <summary>
/// The behaviour every <see cref="IBlobStore"/> back end must show. Each derived class points the same tests at one
/// real back end; the few things a contract cannot do through the interface (damaging stored bytes behind the store's
/// back, seeing an upload in flight) are the derived class's hooks.
/// </summary>
public abstract class BlobStoreContractTests : IAsyncLifetime
{
    protected const int LargeObjectBytes = 20 * 1000 * 1000;

    protected static readonly BlobStoreRetryOptions FastRetry = new()
    {
        MaxAttempts = 3,
        InitialBackoff = TimeSpan.FromMilliseconds(20),
        MaxBackoff = TimeSpan.FromMilliseconds(100),
    };

    private IBlobStore? store;

    protected IBlobStore Store => store ?? throw new InvalidOperationException("InitializeAsync has not run");

    /// <summary>A new store object over the same storage each call (as another silo would open it).</summary>
    protected abstract IBlobStore CreateStore();

    /// <summary>A store whose storage cannot be reached.</summary>
    protected abstract IBlobStore CreateUnreachableStore(BlobStoreRetryOptions retry);

    /// <summary>Flips stored content bytes without going through the store, keeping the recorded checksum.</summary>
    protected abstract Task CorruptStoredBytesAsync(string path);

    /// <summary>Kills a separate writer process in the middle of a put of <paramref name="totalBytes"/>.</summary>
    protected abstract Task KillWriterMidUploadAsync(string path, int totalBytes);

    /// <summary>Asserts that a killed upload really had bytes in the store when it died (so the test proves something).</summary>
    protected abstract Task AssertUncommittedUploadLeftBehindAsync(string path);

    public virtual async Task InitializeAsync()
    {
        store = CreateStore();
        await store.EnsureAvailableAsync();
    }

    public virtual Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Put_then_get_round_trips_bytes_checksum_and_metadata()
    {
        var data = TestBytes.Deterministic(300_001, seed: 1);
        var metadata = new Dictionary<string, string> { ["kind"] = "latent", ["step"] = "1200" };

        var put = await Store.PutBytesAsync("jobs/j1/latents/shard-0.safetensors", data, metadata);
        var got = await Store.GetAsync("jobs/j1/latents/shard-0.safetensors");

        Assert.Equal(data, got.Data);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), put.Sha256);
        Assert.Equal(data.Length, put.Size);
        Assert.Equal(put.Sha256, got.Info.Sha256);
        Assert.Equal(put.ETag, got.Info.ETag);
        Assert.Equal(metadata, got.Info.Metadata);
        Assert.Equal(metadata, put.Metadata);
        var info = await Store.GetInfoAsync("jobs/j1/latents/shard-0.safetensors");
        Assert.Equal((put.Path, put.Size, put.Sha256, put.ETag), (info.Path, info.Size, info.Sha256, info.ETag));
        Assert.Equal(metadata, info.Metadata);
        Assert.True(await Store.ExistsAsync("jobs/j1/latents/shard-0.safetensors"));
    }

    [Fact]
    public async Task Empty_blob_round_trips()
    {
        var put = await Store.PutBytesAsync("empty.bin", Array.Empty<byte>());

        var got = await Store.GetAsync("empty.bin");

        Assert.Empty(got.Data);
        Assert.Equal(0, put.Size);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(Array.Empty<byte>())), got.Info.Sha256);
    }

    [Fact]
    public async Task Overwrite_replaces_content_and_changes_etag()
    {
        var first = await Store.PutBytesAsync("grid.png", TestBytes.Deterministic(1000, 2));
        var second = await Store.PutBytesAsync("grid.png", TestBytes.Deterministic(2000, 3));

        Assert.NotEqual(first.ETag, second.ETag);
        Assert.Equal(TestBytes.Deterministic(2000, 3), (await Store.GetAsync("grid.png")).Data);
    }

    [Fact]
    public async Task Large_object_streams_in_and_out_intact()
    {
        var data = TestBytes.Deterministic(LargeObjectBytes, seed: 4);

        var put = await Store.PutAsync("checkpoints/step-000100.safetensors", new ForwardOnlyStream(data));

        Assert.Equal(LargeObjectBytes, put.Size);
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(data)), put.Sha256);
        await using var read = await Store.OpenReadAsync("checkpoints/step-000100.safetensors");
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[1 << 16];
        long total = 0;
        int n;
        while ((n = await read.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }

        Assert.Equal(LargeObjectBytes, total);
        Assert.Equal(put.Sha256, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }

    [Fact]
    public async Task Bytes_corrupted_behind_the_stores_back_are_detected_on_read()
    {
        var data = TestBytes.Deterministic(100_000, seed: 5);
        var put = await Store.PutBytesAsync("fid/stats.npz", data);

        await CorruptStoredBytesAsync("fid/stats.npz");

        var onGet = await Assert.ThrowsAsync<BlobChecksumMismatchException>(() => Store.GetAsync("fid/stats.npz"));
        Assert.Equal(put.Sha256, onGet.ExpectedSha256);
        Assert.NotEqual(put.Sha256, onGet.ActualSha256);
        Assert.Contains("fid/stats.npz", onGet.Message);
        await using var stream = await Store.OpenReadAsync("fid/stats.npz");
        await Assert.ThrowsAsync<BlobChecksumMismatchException>(() => stream.CopyToAsync(Stream.Null));
    }

    [Fact]
    public async Task Pointer_is_absent_then_created_once_then_compare_and_swapped()
    {
        Assert.Null(await Store.ReadPointerAsync("jobs/j2/latest"));

        var created = await Store.TryUpdatePointerAsync("jobs/j2/latest", "checkpoints/step-1", expectedEtag: null);
        var createdAgain = await Store.TryUpdatePointerAsync("jobs/j2/latest", "checkpoints/other", expectedEtag: null);
        var moved = await Store.TryUpdatePointerAsync("jobs/j2/latest", "checkpoints/step-2", created.ETag);
        var stale = await Store.TryUpdatePointerAsync("jobs/j2/latest", "checkpoints/stale", created.ETag);

        Assert.True(created.Succeeded);
        Assert.False(createdAgain.Succeeded);
        Assert.True(moved.Succeeded);
        Assert.NotEqual(created.ETag, moved.ETag);
        Assert.False(stale.Succeeded);
        Assert.Equal(new BlobPointer("checkpoints/step-2", moved.ETag!), await Store.ReadPointerAsync("jobs/j2/latest"));
        await Assert.ThrowsAsync<BlobConcurrencyException>(
            () => Store.UpdatePointerAsync("jobs/j2/latest", "checkpoints/stale", created.ETag));
    }

    [Fact]
    public async Task Concurrent_pointer_updates_have_exactly_one_winner_per_etag()
    {
        const int writers = 12;
        var stores = Enumerable.Range(0, writers).Select(_ => CreateStore()).ToArray();

        var creations = await Task.WhenAll(stores.Select((s, i) =>
            Task.Run(() => s.TryUpdatePointerAsync("jobs/j3/latest", $"create-{i}", expectedEtag: null))));
        await AssertOneWinnerAsync(creations, "create");

        for (var round = 0; round < 4; round++)
        {
            var before = await Store.ReadPointerAsync("jobs/j3/latest") ?? throw new InvalidOperationException("pointer vanished");
            var valuePrefix = $"round-{round}-writer";
            var results = await Task.WhenAll(stores.Select((s, i) =>
                Task.Run(() => s.TryUpdatePointerAsync("jobs/j3/latest", $"{valuePrefix}-{i}", before.ETag))));
            await AssertOneWinnerAsync(results, valuePrefix);
        }

        async Task AssertOneWinnerAsync(PointerUpdateResult[] results, string valuePrefix)
        {
            var winners = results.Select((result, writer) => (result, writer)).Where(x => x.result.Succeeded).ToArray();
            Assert.Single(winners);
            var now = await Store.ReadPointerAsync("jobs/j3/latest");
            Assert.NotNull(now);
            Assert.Equal(winners[0].result.ETag, now.ETag);
            Assert.Equal($"{valuePrefix}-{winners[0].writer}", now.Value);
        }
    }

    [Fact]
    public async Task Put_abandoned_mid_stream_keeps_the_previous_version_and_commits_nothing()
    {
        var previous = TestBytes.Deterministic(50_000, seed: 6);
        var committed = await Store.PutBytesAsync("checkpoints/step-000200.safetensors", previous);
        var next = TestBytes.Deterministic(LargeObjectBytes / 2, seed: 7);

        await Assert.ThrowsAsync<SimulatedWriterCrashException>(() =>
            Store.PutAsync("checkpoints/step-000200.safetensors", new FailingStream(next, failAfter: next.Length * 3L / 4)));
        await Assert.ThrowsAsync<SimulatedWriterCrashException>(() =>
            Store.PutAsync("checkpoints/step-000300.safetensors", new FailingStream(next, failAfter: next.Length * 3L / 4)));

        var survivor = await Store.GetAsync("checkpoints/step-000200.safetensors");
        Assert.Equal(previous, survivor.Data);
        Assert.Equal(committed.ETag, survivor.Info.ETag);
        Assert.False(await Store.ExistsAsync("checkpoints/step-000300.safetensors"));
        await Assert.ThrowsAsync<BlobNotFoundException>(() => Store.GetAsync("checkpoints/step-000300.safetensors"));
        var listed = await Store.ListAsync("checkpoints/").Select(b => b.Path).ToListAsync();
        Assert.Equal(["checkpoints/step-000200.safetensors"], listed);
    }

    [Fact]
    public async Task Writer_process_killed_mid_upload_never_leaves_a_committed_looking_blob()
    {
        const string path = "checkpoints/step-000400.safetensors";
        var previous = TestBytes.Deterministic(40_000, seed: 8);
        var committed = await Store.PutBytesAsync(path, previous);

        await KillWriterMidUploadAsync(path, totalBytes: 12 * 1024 * 1024);

        await AssertUncommittedUploadLeftBehindAsync(path);
        var survivor = await Store.GetAsync(path);
        Assert.Equal(previous, survivor.Data);
        Assert.Equal(committed.ETag, survivor.Info.ETag);
        Assert.Equal([(path, previous.Length)],
            await Store.ListAsync("checkpoints/").Select(b => (b.Path, (int)b.Size)).ToListAsync());

        var replacement = TestBytes.Deterministic(3 * 1024 * 1024, seed: 9);
        await Store.PutBytesAsync(path, replacement);
        Assert.Equal(replacement, (await Store.GetAsync(path)).Data);
    }

    [Fact]
    public async Task List_returns_committed_blobs_under_a_prefix_in_path_order()
    {
        foreach (var path in new[] { "jobs/b/x.bin", "jobs/a/2.bin", "jobs/a/1.bin", "jobsother/z.bin", "top.bin" })
            await Store.PutBytesAsync(path, TestBytes.Deterministic(10, path.Length));
        await Store.TryUpdatePointerAsync("jobs/a/latest", "jobs/a/2.bin", null);

        Assert.Equal(["jobs/a/1.bin", "jobs/a/2.bin", "jobs/a/latest", "jobs/b/x.bin"],
            await Store.ListAsync("jobs/").Select(b => b.Path).ToListAsync());
        Assert.Equal(["jobs/a/1.bin", "jobs/a/2.bin", "jobs/a/latest", "jobs/b/x.bin", "jobsother/z.bin"],
            await Store.ListAsync("jobs").Select(b => b.Path).ToListAsync());
        Assert.Equal(6, await Store.ListAsync("").CountAsync());
        Assert.Empty(await Store.ListAsync("nothing/").ToListAsync());
        var info = await Store.ListAsync("jobs/a/1").SingleAsync();
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(TestBytes.Deterministic(10, "jobs/a/1.bin".Length))), info.Sha256);
    }

    [Fact]
    public async Task Delete_removes_the_blob_and_reports_whether_it_existed()
    {
        await Store.PutBytesAsync("samples/grid-1.png", TestBytes.Deterministic(10, 10));

        Assert.True(await Store.DeleteAsync("samples/grid-1.png"));
        Assert.False(await Store.DeleteAsync("samples/grid-1.png"));
        Assert.False(await Store.ExistsAsync("samples/grid-1.png"));
        await Assert.ThrowsAsync<BlobNotFoundException>(() => Store.GetInfoAsync("samples/grid-1.png"));
        await Store.PutBytesAsync("samples", TestBytes.Deterministic(5, 11));
        Assert.Equal(5, (await Store.GetAsync("samples")).Data.Length);
    }

    [Fact]
    public async Task Missing_blob_is_reported_by_name()
    {
        var missing = await Assert.ThrowsAsync<BlobNotFoundException>(() => Store.GetAsync("no/such/blob"));

        Assert.Equal("no/such/blob", missing.BlobPath);
        Assert.Contains("'no/such/blob'", missing.Message);
        await Assert.ThrowsAsync<BlobNotFoundException>(() => Store.OpenReadAsync("no/such/blob"));
    }

    [Theory]
    [InlineData("")]
    [InlineData("/absolute")]
    [InlineData("a//b")]
    [InlineData("a/../b")]
    [InlineData(".staging/x")]
    [InlineData("back\\slash")]
    [InlineData("trailing/")]
    public async Task Invalid_paths_are_refused_with_the_path_named(string path)
    {
        var refused = await Assert.ThrowsAsync<ArgumentException>(() => Store.PutBytesAsync(path, new byte[1]));

        Assert.Contains($"'{path}'", refused.Message);
    }

    [Fact]
    public async Task Reserved_or_malformed_metadata_keys_are_refused()
    {
        await Assert.ThrowsAsync<ArgumentException>(() =>
            Store.PutBytesAsync("m.bin", new byte[1], new Dictionary<string, string> { ["rae_sha256"] = "x" }));
        await Assert.ThrowsAsync<ArgumentException>(() =>
            Store.PutBytesAsync("m.bin", new byte[1], new Dictionary<string, string> { ["Bad-Key"] = "x" }));
    }

    [Fact]
    public async Task Unreachable_storage_fails_fast_at_start_with_a_clear_error()
    {
        var unreachable = CreateUnreachableStore(FastRetry);
        var clock = Stopwatch.StartNew();

        var failure = await Assert.ThrowsAsync<BlobStoreUnavailableException>(() => unreachable.EnsureAvailableAsync());

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"start-up check took {clock.Elapsed}");
        Assert.Contains(unreachable.Location, failure.Message);
        Assert.NotNull(failure.InnerException);
    }

    [Fact]
    public async Task Unreachable_storage_during_a_job_is_retried_then_fails_with_the_reason()
    {
        var unreachable = CreateUnreachableStore(FastRetry);
        var clock = Stopwatch.StartNew();

        var failure = await Assert.ThrowsAsync<BlobStoreUnavailableException>(() =>
            unreachable.PutBytesAsync("checkpoints/step-1.safetensors", TestBytes.Deterministic(1000, 12)));
        var readFailure = await Assert.ThrowsAsync<BlobStoreUnavailableException>(() =>
            unreachable.ReadPointerAsync("jobs/j/latest"));

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"failing took {clock.Elapsed}");
        Assert.Equal(FastRetry.MaxAttempts, failure.Attempts);
        Assert.Equal(FastRetry.MaxAttempts, readFailure.Attempts);
        Assert.Contains($"after {FastRetry.MaxAttempts} attempt(s)", failure.Message);
        Assert.Contains("checkpoints/step-1.safetensors", failure.Message);
        Assert.Contains(unreachable.Location, failure.Message);
    }
}
