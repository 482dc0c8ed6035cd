using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using RAE.Configuration;
using RAE.GrainInterfaces;
using RAE.Grains.Storage;
using RAE.Models.Data;
using RAE.Models.IO;

namespace RAE.Grains.Datasets;

/// <summary>Where a silo keeps its local copies of latent shards.</summary>
public sealed class LatentCacheOptions
{
    /// <summary>The cache folder; shared safely by every job and silo that uses it (files are named by their SHA-256).</summary>
    public string Directory { get; set; } = Path.Combine(Path.GetTempPath(), "rae-latent-cache");
}

/// <summary>
/// A silo's access to latent datasets for training: manifests, shards (through the local-disk <see cref="LatentShardCache"/>)
/// and latent statistics, from the cluster's blob store. Every failure is a <see cref="RaeJobException"/> naming the
/// dataset and the problem: an unknown dataset, unreachable storage, a damaged manifest. The cause's message is in the
/// text, not attached: storage exceptions do not cross Orleans' serialisation.
/// </summary>
public sealed class LatentTrainingData(IBlobStore store, LatentCacheOptions cache, ILoggerFactory loggers)
{
    public string StoreLocation => store.Location;

    public string CacheDirectory => cache.Directory;

    public async Task<LatentDatasetManifest> ReadManifestAsync(string name, CancellationToken cancellationToken = default)
    {
        var path = LatentBlobs.ManifestPathOf(name);
        var content = await Guarded(name, "read its manifest", () => store.GetAsync(path, cancellationToken)).ConfigureAwait(false);
        try
        {
            var manifest = LatentDatasetManifest.FromJson(System.Text.Encoding.UTF8.GetString(content.Data), $"latent dataset '{name}' ({path})");
            return manifest.Name == name ? manifest
                : throw new RaeJobException($"latent dataset '{name}': its manifest {path} names '{manifest.Name}'");
        }
        catch (InvalidDataException error)
        {
            throw new RaeJobException(error.Message);
        }
    }

    /// <summary>Refuses a dataset that does not fit the model: latent shape against <c>misc.latent_size</c>, classes against <c>num_classes</c>.</summary>
    public static void EnsureFits(LatentDatasetManifest manifest, RaeConfig config, int globalBatch)
    {
        try
        {
            manifest.EnsureLatentShape(config.Misc.LatentSize.Select(size => (long)size).ToArray());
            manifest.EnsureFitsClasses(config.Stage2?.Params is DiTwDDTHeadParams model ? model.NumClasses : config.Misc.NumClasses);
        }
        catch (InvalidDataException error)
        {
            throw new RaeJobException(error.Message);
        }
        if (manifest.Count < globalBatch)
            throw new RaeJobException($"latent dataset '{manifest.Name}' holds {manifest.Count} latents, fewer than the global batch {globalBatch}: with drop_last no step would have a batch");
    }

    public LatentShardCache CreateShardCache(string name) =>
        new(cache.Directory, async (entry, cancellationToken) =>
            (await Guarded(name, $"fetch shard {entry.File}", () => store.GetAsync(LatentBlobs.ShardPathOf(name, entry.File), cancellationToken)).ConfigureAwait(false)).Data,
            loggers.CreateLogger<LatentShardCache>());

    /// <summary>
    /// The normalisation of the job's latents: <c>stage_1.params.normalization_stat_path</c> (a file on the silo) when the
    /// config names one, else the dataset's own <c>stat.pt</c>; null when neither exists (the reference then trains on
    /// raw latents).
    /// </summary>
    public async Task<LatentNormalization?> LoadNormalizationAsync(RaeConfig config, LatentDatasetManifest manifest, CancellationToken cancellationToken = default)
    {
        var shape = manifest.LatentShape.ToArray();
        var eps = config.Stage1?.Params.Eps ?? 1e-5;
        if (config.Stage1?.Params.NormalizationStatPath is { } statPath)
        {
            if (!File.Exists(statPath))
                throw new RaeJobException($"stage_1.params.normalization_stat_path '{statPath}' does not exist on this silo (it is read from the silo's file system)");
            return Load(statPath, $"stage_1.params.normalization_stat_path '{statPath}'");
        }
        if (manifest.Statistics is null) return null;
        var blob = LatentBlobs.PrefixOf(manifest.Name) + manifest.Statistics.StatPt;
        var content = await Guarded(manifest.Name, $"read its statistics {manifest.Statistics.StatPt}", () => store.GetAsync(blob, cancellationToken)).ConfigureAwait(false);
        var scratch = Path.Combine(Path.GetTempPath(), $"rae-stat-{Guid.NewGuid():N}.pt");
        try
        {
            await File.WriteAllBytesAsync(scratch, content.Data, cancellationToken).ConfigureAwait(false);
            return Load(scratch, $"latent dataset '{manifest.Name}' statistics {blob}");
        }
        finally
        {
            File.Delete(scratch);
        }

        LatentNormalization Load(string path, string source)
        {
            try
            {
                using var stats = CheckpointLoader.LoadLatentStats(path, shape);
                return new LatentNormalization(stats.Mean, stats.Var, eps, source);
            }
            catch (CheckpointFormatException error)
            {
                throw new RaeJobException($"{source} cannot be used: {error.Message}");
            }
        }
    }

    private async Task<T> Guarded<T>(string name, string doing, Func<Task<T>> action)
    {
        try
        {
            return await action().ConfigureAwait(false);
        }
        catch (BlobNotFoundException) when (doing.Contains("manifest", StringComparison.Ordinal))
        {
            throw new RaeJobException($"latent dataset '{name}' does not exist in {store.Location} (no {LatentBlobs.ManifestPathOf(name)}); encode one with 'rae encode CONFIG --dataset DATASET --name {name}'");
        }
        catch (BlobNotFoundException error)
        {
            throw new RaeJobException($"latent dataset '{name}' is incomplete: could not {doing}: {error.Message}");
        }
        catch (BlobStoreUnavailableException error)
        {
            throw new RaeJobException($"latent dataset '{name}': the blob storage {store.Location} is unreachable, so this silo could not {doing}: {error.Message}");
        }
        catch (BlobCorruptedException error)
        {
            throw new RaeJobException($"latent dataset '{name}': could not {doing}, the stored blob is damaged: {error.Message}");
        }
    }
}

/// <summary>Reads latent dataset manifests for the client (<see cref="ILatentDatasetInfoGrain"/>).</summary>
[StatelessWorker]
public sealed class LatentDatasetInfoGrain(LatentTrainingData data) : Grain, ILatentDatasetInfoGrain
{
    public async Task<LatentDatasetInfo> Describe()
    {
        var name = DatasetNames.Validate(this.GetPrimaryKeyString());
        var manifest = await data.ReadManifestAsync(name);
        return new LatentDatasetInfo(manifest.Name, manifest.Dataset, manifest.Count, manifest.LatentShape.ToList(), manifest.DType, manifest.Flips,
            manifest.Classes.Count, manifest.Statistics is not null);
    }
}
