using RAE.GrainInterfaces;
using RAE.Grains.Storage;

namespace RAE.Grains.Datasets;

/// <summary>Lists the committed datasets from the blob store itself: a dataset is listed exactly when its manifest exists.</summary>
public sealed class DatasetCatalogGrain(IBlobStore store) : Grain, IDatasetCatalogGrain
{
    public async Task<IReadOnlyList<DatasetDescription>> List()
    {
        try
        {
            var datasets = new List<DatasetDescription>();
            await foreach (var blob in store.ListAsync(DatasetBlobs.Root + "/"))
            {
                if (DatasetBlobs.NameOfManifest(blob.Path) is not { } name) continue;
                BlobContent content;
                try
                {
                    content = await store.GetAsync(blob.Path);
                }
                catch (BlobNotFoundException)
                {
                    continue; // removed since the listing
                }
                datasets.Add(DatasetGrain.Parse(name, content.Data));
            }
            return datasets.OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
        }
        catch (BlobStoreException error)
        {
            throw new RaeJobException($"dataset storage failed: {error.Message}");
        }
    }
}
