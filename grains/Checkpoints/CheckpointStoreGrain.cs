using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Checkpoints;

[GenerateSerializer]
public sealed class CheckpointCatalogState
{
    [Id(0)] public List<CheckpointInfo> Committed { get; set; } = [];
    /// <summary>Pinned step per holder (a sampling job that reads it).</summary>
    [Id(1)] public Dictionary<string, long> Pins { get; set; } = new(StringComparer.Ordinal);
    /// <summary>The newest writer generation ever committed: a commit from an older one comes from a stale writer.</summary>
    [Id(2)] public int CommittedGeneration { get; set; }
    /// <summary>Checkpoints a newer group replaced while a holder pinned their step: the holder reads this payload, so it
    /// is deleted only once no pin holds the step.</summary>
    [Id(3)] public List<CheckpointInfo> PinnedReplaced { get; set; } = [];
    /// <summary>The policy of the last commit, applied again when a pin is dropped (a job that no longer commits
    /// would otherwise keep an unpinned checkpoint for good).</summary>
    [Id(4)] public CheckpointRetentionPolicy? Retention { get; set; }
}

/// <summary>Catalog of one job's committed checkpoints, persisted as grain state; applies the job's retention policy
/// on every commit and serves payloads to clients in chunks.</summary>
public sealed class CheckpointStoreGrain(
    [PersistentState("checkpoints", RaeStorage.GrainStateProvider)] IPersistentState<CheckpointCatalogState> catalog,
    ICheckpointPayloadStore payloads,
    ILogger<CheckpointStoreGrain> logger) : Grain, ICheckpointStoreGrain
{
    private string JobId => this.GetPrimaryKeyString();

    public async Task Commit(CheckpointInfo checkpoint, CheckpointRetentionPolicy retention)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        ArgumentNullException.ThrowIfNull(retention);
        if (checkpoint.JobId != JobId)
            throw new RaeJobException($"Checkpoint of job '{checkpoint.JobId}' was sent to the catalog of job '{JobId}'.");
        RequireOwnLocation(checkpoint);
        RequireCurrentGeneration(checkpoint);
        retention.Validate();
        var committed = catalog.State.Committed;
        if (committed.Contains(checkpoint)) return;
        // A newer group that redid a step replaces the older group's checkpoint of it; that payload goes with it, unless
        // a holder pinned the step (it reads that very payload) and then it goes once the pin is dropped.
        var pinned = catalog.State.Pins.Values.ToHashSet();
        var replaced = committed.Where(c => c.Step == checkpoint.Step && c.Location != checkpoint.Location).ToList();
        committed.RemoveAll(c => c.Step == checkpoint.Step);
        committed.Add(checkpoint);
        catalog.State.PinnedReplaced.AddRange(replaced.Where(c => pinned.Contains(c.Step)));
        catalog.State.CommittedGeneration = Math.Max(catalog.State.CommittedGeneration, checkpoint.Generation);
        committed.Sort((a, b) => a.Step.CompareTo(b.Step));
        catalog.State.Retention = retention;
        var retired = replaced.Where(c => !pinned.Contains(c.Step)).Concat(ApplyRetention()).ToList();
        await WriteOrReloadAsync(landed: () => catalog.State.Committed.Contains(checkpoint));
        await DeleteRetiredAsync(retired);
    }

    public async Task Pin(long step, string holder)
    {
        if (string.IsNullOrWhiteSpace(holder)) throw new RaeJobException($"A pin on job '{JobId}' needs a holder id; none was given.");
        Find(step);
        if (catalog.State.Pins.TryGetValue(holder, out var pinned) && pinned == step) return;
        catalog.State.Pins[holder] = step;
        await WriteOrReloadAsync(landed: () => catalog.State.Pins.TryGetValue(holder, out var stored) && stored == step);
    }

    public async Task Unpin(string holder)
    {
        if (!catalog.State.Pins.Remove(holder ?? "")) return;
        var retired = ApplyRetention();
        await WriteOrReloadAsync(landed: () => !catalog.State.Pins.ContainsKey(holder ?? ""));
        await DeleteRetiredAsync(retired);
    }

    /// <summary>
    /// Drops from the catalog state what the last commit's retention policy no longer keeps, pinned steps aside, and
    /// replaced checkpoints whose step no pin holds any more; returns them (their payloads go once the state is written).
    /// </summary>
    private List<CheckpointInfo> ApplyRetention()
    {
        var state = catalog.State;
        var pinned = state.Pins.Values.ToHashSet();
        var keep = (state.Retention?.StepsToKeep(state.Committed) ?? state.Committed.Select(c => c.Step)).Concat(pinned).ToHashSet();
        var retired = state.Committed.Where(c => !keep.Contains(c.Step)).Concat(state.PinnedReplaced.Where(c => !pinned.Contains(c.Step))).ToList();
        state.Committed.RemoveAll(c => !keep.Contains(c.Step));
        state.PinnedReplaced.RemoveAll(c => !pinned.Contains(c.Step));
        return retired;
    }

    /// <summary>
    /// Writes the catalog. A write that fails may still have landed (storage frozen past the call's timeout), so the
    /// activation never keeps answering from entries that storage may not hold: it reads the catalog back and the call
    /// succeeds only when what it meant to write is there (<paramref name="landed"/>); when even the read fails, the
    /// activation goes and the next call loads what storage holds.
    /// </summary>
    private async Task WriteOrReloadAsync(Func<bool> landed)
    {
        try
        {
            await catalog.WriteStateAsync();
            return;
        }
        catch (Exception writeError) when (writeError is not OutOfMemoryException)
        {
            try
            {
                await catalog.ReadStateAsync();
            }
            catch (Exception readError) when (readError is not OutOfMemoryException)
            {
                logger.LogWarning(readError, "The checkpoint catalog of job {Job} could not be read back after a failed write; the activation goes", JobId);
                DeactivateOnIdle();
                throw new RaeJobException($"The checkpoint catalog of job '{JobId}' could not be written ({writeError.Message}) nor read back ({readError.Message}); the change is not committed.");
            }
            if (!landed()) throw;
            logger.LogInformation(writeError, "The checkpoint catalog write of job {Job} failed but had landed; the change stands", JobId);
        }
    }

    /// <summary>Payloads go only after the catalog no longer lists them, so a crash here leaves an orphan, never a dangling entry.</summary>
    private async Task DeleteRetiredAsync(IEnumerable<CheckpointInfo> retired)
    {
        foreach (var old in retired)
        {
            try
            {
                await payloads.DeleteAsync(old);
            }
            catch (Exception error) when (error is IOException or BlobStoreException)
            {
                logger.LogWarning(error, "Could not delete retired checkpoint {Location} of job {Job}", old.Location, JobId);
            }
        }
    }

    public Task<IReadOnlyList<CheckpointInfo>> List() => Task.FromResult<IReadOnlyList<CheckpointInfo>>(catalog.State.Committed.ToList());

    public Task<CheckpointInfo?> Latest() => Task.FromResult(catalog.State.Committed.Count == 0 ? null : catalog.State.Committed[^1]);

    public Task<CheckpointInfo> Get(long step) => Task.FromResult(Find(step));

    public async IAsyncEnumerable<byte[]> ReadPayload(long step, int chunkBytes, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (chunkBytes is < 1 or > ICheckpointStoreGrain.MaxChunkBytes)
            throw new RaeJobException($"Chunk size {chunkBytes} is out of range: it must be within 1..{ICheckpointStoreGrain.MaxChunkBytes} bytes.");
        var checkpoint = Find(step);
        Stream payload;
        try
        {
            payload = await payloads.OpenReadAsync(checkpoint, cancellationToken);
        }
        catch (Exception error) when (error is InvalidDataException or FileNotFoundException or BlobStoreException)
        {
            // The client gets the reason (missing, corrupt, storage unreachable) as a job error it can print.
            throw new RaeJobException(error.Message);
        }

        await using (payload)
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long sent = 0;
            while (true)
            {
                var chunk = await ReadChunkAsync(payload, (int)Math.Min(chunkBytes, Math.Max(1, checkpoint.SizeBytes - sent)), cancellationToken);
                if (chunk.Length == 0) break;
                hash.AppendData(chunk);
                sent += chunk.Length;
                if (sent == checkpoint.SizeBytes)
                {
                    // The store verified its own checksum on the last byte; this checks the bytes against the catalog too.
                    var actual = Convert.ToHexString(hash.GetHashAndReset());
                    if (!string.Equals(actual, checkpoint.Sha256, StringComparison.OrdinalIgnoreCase))
                        throw new RaeJobException($"Checkpoint '{checkpoint.Location}' of job '{JobId}' at step {step} has SHA-256 {actual}, the catalog says {checkpoint.Sha256}; it is corrupt.");
                }
                yield return chunk;
            }
            if (sent != checkpoint.SizeBytes)
                throw new RaeJobException($"Checkpoint '{checkpoint.Location}' of job '{JobId}' at step {step} holds {sent} bytes, the catalog says {checkpoint.SizeBytes}; it is corrupt.");
        }
    }

    private static async Task<byte[]> ReadChunkAsync(Stream payload, int size, CancellationToken cancellationToken)
    {
        var buffer = new byte[size];
        var filled = 0;
        try
        {
            while (filled < size)
            {
                var read = await payload.ReadAsync(buffer.AsMemory(filled), cancellationToken);
                if (read == 0) break;
                filled += read;
            }
        }
        catch (Exception error) when (error is InvalidDataException or BlobStoreException)
        {
            // The payload store's and blob store's messages name the job, step and blob.
            throw new RaeJobException(error.Message);
        }
        return filled == size ? buffer : buffer[..filled];
    }

    /// <summary>
    /// Retention deletes what the catalog lists, so a commit may name only this job's own payloads
    /// (<c>checkpoints/{job}/NAME</c>): a forged location elsewhere would make retention delete another job's data.
    /// </summary>
    private void RequireOwnLocation(CheckpointInfo checkpoint)
    {
        if (checkpoint.Step < 0)
            throw new RaeJobException($"Checkpoint of job '{JobId}' names step {checkpoint.Step}; steps are zero or positive.");
        var folder = BlobCheckpointPayloadStore.Root + "/" + JobBlobNames.RequireJobId(JobId) + "/";
        if (checkpoint.Location is not { } location || !JobBlobNames.IsEntryOf(location, folder))
            throw new RaeJobException($"Checkpoint of job '{JobId}' at step {checkpoint.Step} names '{checkpoint.Location}', which is not one of the job's own checkpoint names ({folder}NAME); the commit is refused.");
    }

    /// <summary>
    /// A writer of an older group generation than one already committed is stale (its rank was presumed dead and the
    /// group re-formed without it), and a committed checkpoint is never replaced by another payload of the same
    /// generation: either would let outdated bytes stand for a step that a newer group owns.
    /// </summary>
    private void RequireCurrentGeneration(CheckpointInfo checkpoint)
    {
        var expected = BlobCheckpointPayloadStore.PathOf(JobId, checkpoint.Step, checkpoint.Generation);
        if (checkpoint.Generation < 0 || checkpoint.Location != expected)
            throw new RaeJobException($"Checkpoint of job '{JobId}' at step {checkpoint.Step} names '{checkpoint.Location}', but generation {checkpoint.Generation} writes '{expected}'; the commit is refused.");
        if (checkpoint.Generation < catalog.State.CommittedGeneration)
            throw new RaeJobException($"Checkpoint of job '{JobId}' at step {checkpoint.Step} comes from generation {checkpoint.Generation}, but generation {catalog.State.CommittedGeneration} has committed since: a stale writer's commit is refused.");
        if (catalog.State.Committed.FirstOrDefault(c => c.Step == checkpoint.Step && c.Generation == checkpoint.Generation) is { } committed && committed != checkpoint)
            throw new RaeJobException($"Checkpoint of job '{JobId}' at step {checkpoint.Step}, generation {checkpoint.Generation}, is committed already (SHA-256 {committed.Sha256}); another payload cannot replace it.");
    }

    private CheckpointInfo Find(long step) =>
        catalog.State.Committed.FirstOrDefault(c => c.Step == step)
            ?? throw new RaeJobException($"Job '{JobId}' has no committed checkpoint at step {step}; committed steps: [{string.Join(", ", catalog.State.Committed.Select(c => c.Step))}].");
}
