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
        // A newer group that redid a step replaces the older group's checkpoint of it; that payload goes with it.
        var replaced = committed.Where(c => c.Step == checkpoint.Step && c.Location != checkpoint.Location).ToList();
        committed.RemoveAll(c => c.Step == checkpoint.Step);
        committed.Add(checkpoint);
        catalog.State.CommittedGeneration = Math.Max(catalog.State.CommittedGeneration, checkpoint.Generation);
        committed.Sort((a, b) => a.Step.CompareTo(b.Step));
        var keep = retention.StepsToKeep(committed).Concat(catalog.State.Pins.Values).ToHashSet();
        var retired = committed.Where(c => !keep.Contains(c.Step)).Concat(replaced).ToList();
        committed.RemoveAll(c => !keep.Contains(c.Step));
        await catalog.WriteStateAsync();
        // Payloads go only after the catalog no longer lists them, so a crash here leaves an orphan, never a dangling entry.
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

    public async Task Pin(long step, string holder)
    {
        if (string.IsNullOrWhiteSpace(holder)) throw new RaeJobException($"A pin on job '{JobId}' needs a holder id; none was given.");
        Find(step);
        if (catalog.State.Pins.TryGetValue(holder, out var pinned) && pinned == step) return;
        catalog.State.Pins[holder] = step;
        await catalog.WriteStateAsync();
    }

    public async Task Unpin(string holder)
    {
        if (catalog.State.Pins.Remove(holder ?? "")) await catalog.WriteStateAsync();
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
