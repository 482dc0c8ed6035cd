using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Storage;
using RAE.Models.Data;

namespace RAE.Grains.EncodeJobs;

/// <summary>Lists, describes and removes latent datasets straight from the blob store (<c>latents/NAME/manifest.json</c>).</summary>
public sealed class LatentCatalogGrain(IBlobStore store) : Grain, ILatentCatalogGrain
{
    public Task<IReadOnlyList<LatentDatasetSummary>> List() => Guarded(async () =>
    {
        var latents = new List<LatentDatasetSummary>();
        await foreach (var blob in store.ListAsync(LatentBlobs.Root + "/"))
        {
            var parts = blob.Path.Split('/');
            if (parts.Length != 3 || parts[2] != LatentDatasetManifest.FileName || DatasetNames.Problem(parts[1]) is not null) continue;
            try
            {
                latents.Add(Summarise(parts[1], (await store.GetAsync(blob.Path)).Data));
            }
            catch (BlobNotFoundException)
            {
                // removed since the listing
            }
        }
        return (IReadOnlyList<LatentDatasetSummary>)latents.OrderBy(l => l.Name, StringComparer.Ordinal).ToList();
    });

    public Task<LatentDatasetSummary> Describe(string name) => Guarded(async () =>
    {
        try
        {
            return Summarise(name, (await store.GetAsync(LatentBlobs.ManifestPathOf(name))).Data);
        }
        catch (BlobNotFoundException)
        {
            throw new RaeJobException($"no latent dataset named '{name}' (rae latents list shows them; rae encode makes one)");
        }
    });

    public Task<bool> Remove(string name) => Guarded(async () =>
    {
        // The manifest goes first: from then on the latent dataset is not listed, whatever happens to its other files.
        var existed = await store.DeleteAsync(LatentBlobs.ManifestPathOf(name));
        await foreach (var blob in store.ListAsync(LatentBlobs.PrefixOf(name)))
            existed |= await store.DeleteAsync(blob.Path);
        return existed;
    });

    private static LatentDatasetSummary Summarise(string name, byte[] manifestBytes)
    {
        LatentDatasetManifest manifest;
        try
        {
            manifest = LatentDatasetManifest.FromJson(System.Text.Encoding.UTF8.GetString(manifestBytes), $"the manifest of latent dataset '{name}'");
        }
        catch (InvalidDataException error)
        {
            throw new RaeJobException(error.Message);
        }
        return new LatentDatasetSummary(manifest.Name, manifest.Dataset, manifest.Encoder, manifest.ImageSize, manifest.LatentShape.ToArray(), manifest.DType,
            manifest.Flips, manifest.Classes.ToArray(), manifest.CountsPerClass.ToArray(), manifest.Shards.Count, manifest.Shards.Sum(s => s.Bytes),
            manifest.Statistics?.Method);
    }

    private static async Task<T> Guarded<T>(Func<Task<T>> work)
    {
        try
        {
            return await work();
        }
        catch (BlobStoreException error)
        {
            throw new RaeJobException($"latent storage failed: {error.Message}");
        }
    }
}
