using System.Diagnostics;
using RAE.GrainInterfaces;
using RAE.Grains.Collectives.Ring;
using RAE.Grains.Placement;

namespace RAE.Grains.Collectives;

/// <summary>
/// Times all-reduces of a synthetic gradient through the probe's transport (the TCP ring, its chunk size being the
/// bucket size, or the group grain), exactly as a rank grain does it. Rank r contributes (r + 1)·f(i) with small integer f, so the sum is exact in fp32 and checkable.
/// </summary>
[SiloBoundPlacement]
public sealed class CollectiveProbeGrain(IGrainFactory grainFactory, ILocalSiloDetails silo) : Grain, ICollectiveProbeGrain
{
    private static readonly TimeSpan CollectiveTimeout = TimeSpan.FromMinutes(10);

    public async Task<AllReduceProbeResult> MeasureAllReduce(AllReduceProbe probe)
    {
        ArgumentNullException.ThrowIfNull(probe);
        if (probe.Elements < 1) throw new ArgumentOutOfRangeException(nameof(probe), probe.Elements, "The probe needs at least one element.");
        if (probe.Warmup < 0 || probe.Repetitions < 1)
            throw new ArgumentOutOfRangeException(nameof(probe), $"Warm-up {probe.Warmup} must be >= 0 and repetitions {probe.Repetitions} >= 1.");
        await grainFactory.GetGrain<ICollectiveGroupGrain>(probe.GroupKey).Configure(probe.WorldSize, CollectiveTimeout);
        using ICollectiveCommunicator communicator = probe.Transport == CollectiveTransport.Orleans
            ? new OrleansCollectiveCommunicator(grainFactory, probe.GroupKey, probe.Rank, probe.WorldSize, probe.ChunkElements, probe.ChunksInFlight)
            : new RingCollectiveCommunicator(grainFactory, probe.GroupKey, probe.Rank, probe.WorldSize, silo.SiloAddress.Endpoint.Address,
                bucketElements: probe.ChunkElements, pieceElements: probe.RingPieceElements > 0 ? probe.RingPieceElements : RingCollectiveCommunicator.DefaultPieceElements,
                tls: probe.RingTls is null ? null : RingTls.FromMaterial(probe.RingTls));

        // Reduced in place, like a rank's gradient; the vector is refilled before each repetition, outside the timing.
        var reduced = new float[probe.Elements];
        var seconds = new List<double>(probe.Repetitions);
        for (var repetition = 0; repetition < probe.Warmup + probe.Repetitions; repetition++)
        {
            for (var i = 0; i < reduced.Length; i++) reduced[i] = (probe.Rank + 1) * Pattern(i);
            await communicator.BarrierAsync();
            var clock = Stopwatch.StartNew();
            await communicator.AllReduceInPlaceAsync(reduced, ReduceOperation.Sum);
            if (repetition >= probe.Warmup) seconds.Add(clock.Elapsed.TotalSeconds);
        }

        float rankSum = probe.WorldSize * (probe.WorldSize + 1) / 2;
        double maxError = 0;
        for (var i = 0; i < reduced.Length; i++) maxError = Math.Max(maxError, Math.Abs(reduced[i] - rankSum * Pattern(i)));
        return new AllReduceProbeResult(silo.SiloAddress.ToParsableString(), seconds, maxError);
    }

    private static float Pattern(int index) => index % 251 - 125;
}
