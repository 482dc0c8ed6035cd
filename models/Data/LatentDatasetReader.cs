using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>Latents <c>[n, C, H, W]</c> (float32, as stored: not normalised) and their labels.</summary>
public sealed record LatentRows(float[] Latents, long[] Labels, long[] Shape);

/// <summary>
/// Reads latents by dataset index from a latent dataset (<see cref="LatentDatasetManifest"/>): latent i is row i − start
/// of the shard holding it, shards in manifest order. Shards come from the <see cref="LatentShardCache"/> (fetched and
/// verified once, then read row by row from the local disk). Labels are checked against the manifest's classes.
/// </summary>
public sealed class LatentDatasetReader : IDisposable
{
    private readonly LatentDatasetManifest _manifest;
    private readonly LatentShardCache _cache;
    private readonly long[] _shardStarts;
    private readonly ConcurrentDictionary<int, Lazy<Task<LatentShardFile>>> _open = new();

    public LatentDatasetReader(LatentDatasetManifest manifest, LatentShardCache cache)
    {
        _manifest = manifest ?? throw new ArgumentNullException(nameof(manifest));
        _cache = cache ?? throw new ArgumentNullException(nameof(cache));
        _shardStarts = new long[manifest.Shards.Count];
        long start = 0;
        for (var i = 0; i < manifest.Shards.Count; i++)
        {
            _shardStarts[i] = start;
            start += manifest.Shards[i].Count;
        }
        Count = start;
        LatentShape = manifest.LatentShape.ToArray();
        RowElements = LatentShape.Aggregate(1L, (a, b) => a * b);
    }

    public long Count { get; }

    public long[] LatentShape { get; }

    public long RowElements { get; }

    /// <summary>The latents (flipped ones where asked) and labels of <paramref name="samples"/>, in order.</summary>
    public async Task<LatentRows> ReadAsync(IReadOnlyList<(long Index, bool Flipped)> samples, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (samples.Any(sample => sample.Flipped) && !_manifest.Flips)
            throw new InvalidDataException($"latent dataset '{_manifest.Name}' was encoded without flips, so it has no flipped latents to read");
        var latents = new float[samples.Count * RowElements];
        var labels = new long[samples.Count];
        for (var i = 0; i < samples.Count; i++)
        {
            var (index, flipped) = samples[i];
            if (index < 0 || index >= Count) throw new ArgumentOutOfRangeException(nameof(samples), index, $"latent dataset '{_manifest.Name}' holds {Count} latents");
            var shardIndex = ShardOf(index);
            var shard = await OpenAsync(shardIndex, cancellationToken).ConfigureAwait(false);
            var row = index - _shardStarts[shardIndex];
            shard.ReadLatent(row, flipped, latents.AsSpan((int)(i * RowElements), (int)RowElements));
            labels[i] = shard.Labels[(int)row];
            if (labels[i] < 0 || labels[i] >= _manifest.Classes.Count)
                throw new InvalidDataException(
                    $"latent dataset '{_manifest.Name}' shard {_manifest.Shards[shardIndex].File} row {row} has label {labels[i]}, outside its {_manifest.Classes.Count} classes");
        }
        return new LatentRows(latents, labels, [samples.Count, .. LatentShape]);
    }

    /// <summary>Fetches (or verifies) every shard into the cache, in manifest order.</summary>
    public async Task WarmAsync(CancellationToken cancellationToken = default)
    {
        for (var i = 0; i < _manifest.Shards.Count; i++) await OpenAsync(i, cancellationToken).ConfigureAwait(false);
    }

    private int ShardOf(long index)
    {
        var found = Array.BinarySearch(_shardStarts, index);
        if (found >= 0)
        {
            // Empty shards share their start with the next one: take the last shard starting here.
            while (found + 1 < _shardStarts.Length && _shardStarts[found + 1] == index) found++;
            return found;
        }
        return ~found - 1;
    }

    private Task<LatentShardFile> OpenAsync(int shardIndex, CancellationToken cancellationToken)
    {
        var lazy = _open.GetOrAdd(shardIndex, index => new Lazy<Task<LatentShardFile>>(async () =>
        {
            var entry = _manifest.Shards[index];
            var path = await _cache.GetAsync(entry, _manifest.Name, cancellationToken).ConfigureAwait(false);
            return LatentShardFile.Open(path, $"latent dataset '{_manifest.Name}' shard {entry.File}", LatentShape, entry.Count);
        }));
        var task = lazy.Value;
        if (task.IsFaulted || task.IsCanceled) _open.TryRemove(new KeyValuePair<int, Lazy<Task<LatentShardFile>>>(shardIndex, lazy));
        return task;
    }

    public void Dispose()
    {
        foreach (var lazy in _open.Values)
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully) lazy.Value.Result.Dispose();
        _open.Clear();
    }
}

/// <summary>
/// The reference's latent normalisation (spec §2.2 step 6): <c>z ← (z − mean) / sqrt(var + eps)</c> with per-element
/// <c>mean</c> and <c>var</c> shaped like one latent, broadcast over the batch.
/// </summary>
public sealed class LatentNormalization : IDisposable
{
    public LatentNormalization(Tensor mean, Tensor variance, double eps, string source)
    {
        using var scope = NewDisposeScope();
        Mean = mean.to(ScalarType.Float32, CPU).clone().MoveToOuterDisposeScope();
        Std = variance.to(ScalarType.Float32, CPU).add(eps).sqrt().MoveToOuterDisposeScope();
        Source = source;
    }

    public Tensor Mean { get; }

    /// <summary>sqrt(var + eps).</summary>
    public Tensor Std { get; }

    /// <summary>Where the statistics came from, for logs and messages.</summary>
    public string Source { get; }

    public Tensor Apply(Tensor latents) => latents.sub(Mean.to(latents.device)).div_(Std.to(latents.device));

    public void Dispose()
    {
        Mean.Dispose();
        Std.Dispose();
    }
}
