namespace RAE.GrainInterfaces;

/// <summary>One work unit of a sampling job: samples [<see cref="FirstIndex"/>, FirstIndex + Labels.Count) with their labels and seed.</summary>
[GenerateSerializer, Immutable]
public sealed record SamplingUnitRequest(
    [property: Id(0)] string JobId,
    [property: Id(1)] int Unit,
    [property: Id(2)] int FirstIndex,
    [property: Id(3)] IReadOnlyList<int> Labels,
    [property: Id(4)] long Seed,
    [property: Id(5)] SamplingJobSpec Spec,
    [property: Id(6)] string OutputPrefix,
    [property: Id(7)] SamplingSourcePin? Source = null);

/// <summary>
/// The training-job checkpoint a sampling job samples from, resolved once and persisted with the job so a resumed job
/// samples the same weights: the committed checkpoint (step, location, SHA-256) and, when the sampling spec carries no
/// configuration, the <c>config.yaml</c> stored in that checkpoint.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SamplingSourcePin(
    [property: Id(0)] CheckpointInfo Checkpoint,
    [property: Id(1)] string? ConfigYaml);

/// <summary>What a worker wrote for one unit; <see cref="Seconds"/> is the time the tensor work took.</summary>
[GenerateSerializer, Immutable]
public sealed record SamplingUnitResult(
    [property: Id(0)] int Unit,
    [property: Id(1)] int Samples,
    [property: Id(2)] string UnitLocation,
    [property: Id(3)] bool HasImages,
    [property: Id(4)] double Seconds);

/// <summary>
/// The sampling worker of one device of one silo (key: <see cref="SiloBoundKey.Sampler"/>), placed on that silo. It holds
/// the loaded model on a dedicated worker thread; grain turns only move requests and blobs.
/// </summary>
public interface ISamplingWorkerGrain : IUnitWorkerGrain
{
    /// <summary>Generates the unit's samples (and decodes them when the configuration has a Stage-1 decoder), writes the
    /// unit's result and its PNGs to blob storage, and returns where the unit went.</summary>
    [ResponseTimeout("01:00:00")]
    Task<SamplingUnitResult> RunUnit(SamplingUnitRequest request);

    /// <summary>
    /// Packs the images of the job's units 0 .. <paramref name="unitCount"/> - 1, in order, into one FID <c>.npz</c>
    /// (<c>arr_0</c>, uint8, N×H×W×3) in the job's output folder. The worker derives every blob name from the job id and
    /// the spec's output folder, which it validates itself; a caller names no blob.
    /// </summary>
    [ResponseTimeout("01:00:00")]
    Task<long> AssembleNpz(string jobId, SamplingJobSpec spec, int unitCount);

    /// <summary>Drops the job's cached model.</summary>
    Task Release(string jobId);
}
