using RAE.GrainInterfaces;

namespace RAE.Grains;

/// <summary>What the hosting silo tells its grains: its compute devices and how many threads a rank may use.</summary>
public sealed class RankDeviceOptions
{
    public string[] Devices { get; set; } = ["cpu"];
    public int ThreadsPerRank { get; set; } = 1;

    /// <summary>How ranks exchange gradients: the TCP ring (default) or the star through the group grain. CUDA ranks use NCCL where it loads.</summary>
    public CollectiveTransport Collective { get; set; } = CollectiveTransport.Ring;

    /// <summary>All-reduce finished gradients while backward still runs, for workers that report their progress (DiT^DH on
    /// the CPU); false waits for the whole gradient first. The result is the same bits either way.</summary>
    public bool OverlapGradients { get; set; } = true;

    /// <summary>Mutual TLS for the ring's connections with the silo's cluster certificates; null when the cluster runs without TLS.</summary>
    public Collectives.Ring.RingTls? RingTls { get; set; }
}

public static class RaeStorage
{
    /// <summary>Name of the grain storage provider every RAE grain persists its state with.</summary>
    public const string GrainStateProvider = "rae";
}
