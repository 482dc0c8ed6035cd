using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;
using RAE.Grains.Sampling;
using RAE.Grains.Workers;

namespace RAE.Grains.Training;

/// <summary>Tells the coordinator which devices its silo offers, and the registry which workloads. Lives on the silo its key names.</summary>
[SiloBoundPlacement]
public sealed class SiloAgentGrain(IOptions<RankDeviceOptions> devices, ILocalSiloDetails silo, IEnumerable<IRankWorkerFactory> workerFactories)
    : Grain, ISiloAgentGrain
{
    public Task<SiloComputeInfo> GetComputeInfo() =>
        Task.FromResult(new SiloComputeInfo(silo.SiloAddress.ToParsableString(), devices.Value.Devices.ToArray(), devices.Value.ThreadsPerRank));

    public Task<SiloWorkloads> GetWorkloads() =>
        Task.FromResult(new SiloWorkloads(silo.SiloAddress.ToParsableString(), devices.Value.Devices.ToArray(),
            workerFactories.Select(f => f.Workload).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray(),
            [SamplingPlan.Workload]));
}
