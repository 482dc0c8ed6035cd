namespace RAE.GrainInterfaces;

/// <summary>One rank's part of an all-reduce measurement between silos (`rae bench cluster`). For the ring,
/// <see cref="ChunkElements"/> is the bucket size and <see cref="RingPieceElements"/> the piece size (0: the default).</summary>
[GenerateSerializer, Immutable]
public sealed record AllReduceProbe(
    [property: Id(0)] string GroupKey,
    [property: Id(1)] int Rank,
    [property: Id(2)] int WorldSize,
    [property: Id(3)] int Elements,
    [property: Id(4)] int ChunkElements,
    [property: Id(5)] int Warmup,
    [property: Id(6)] int Repetitions,
    [property: Id(7)] int ChunksInFlight,
    [property: Id(8)] CollectiveTransport Transport = CollectiveTransport.Ring,
    [property: Id(9)] int RingPieceElements = 0,
    [property: Id(10)] RingTlsMaterial? RingTls = null);

/// <summary>
/// Certificates for a ring probe over mutual TLS (a benchmark's throwaway set): this rank's PKCS#12 with its private key,
/// its password, and the authority (DER) every peer must chain to.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record RingTlsMaterial(
    [property: Id(0)] byte[] Pkcs12,
    [property: Id(1)] string Password,
    [property: Id(2)] byte[] Authority);

/// <summary>
/// Seconds of each timed all-reduce of one rank (after a barrier, so the ranks start together) and the largest
/// difference between the reduced vector and the exact expected sum (0 unless the collective is broken).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record AllReduceProbeResult(
    [property: Id(0)] string SiloAddress,
    [property: Id(1)] IReadOnlyList<double> Seconds,
    [property: Id(2)] double MaxAbsoluteError);

/// <summary>
/// Runs collectives from inside a silo (key: <see cref="SiloBoundKey.Create"/> with suffix "collective-probe"), so a
/// benchmark measures rank-to-rank traffic between silos rather than client-to-silo traffic.
/// </summary>
public interface ICollectiveProbeGrain : IGrainWithStringKey
{
    public const string KeySuffix = "collective-probe";

    [ResponseTimeout("01:00:00")]
    Task<AllReduceProbeResult> MeasureAllReduce(AllReduceProbe probe);
}
