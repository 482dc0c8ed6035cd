namespace RAE.GrainInterfaces;

/// <summary>What a training job needs to know of a committed latent dataset (its manifest under <c>latents/NAME/</c>).</summary>
[GenerateSerializer, Immutable]
public sealed record LatentDatasetInfo(
    [property: Id(0)] string Name,
    [property: Id(1)] string SourceDataset,
    [property: Id(2)] long Count,
    [property: Id(3)] IReadOnlyList<long> LatentShape,
    [property: Id(4)] string DType,
    [property: Id(5)] bool Flips,
    [property: Id(6)] int Classes,
    [property: Id(7)] bool HasStatistics);

/// <summary>
/// Reads a latent dataset's manifest from the cluster's blob store (key: the latent dataset's name), so that the client,
/// which holds no storage credentials, can size a training job's epochs. A <see cref="RaeJobException"/> names an unknown
/// dataset or unreachable storage.
/// </summary>
public interface ILatentDatasetInfoGrain : IGrainWithStringKey
{
    Task<LatentDatasetInfo> Describe();
}
