using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;

namespace RAE.Grains.Training;

/// <summary>Tells the coordinator which devices its silo offers. Lives on the silo its key names.</summary>
[SiloBoundPlacement]
public sealed class SiloAgentGrain(IOptions<RankDeviceOptions> devices, ILocalSiloDetails silo) : Grain, ISiloAgentGrain
{
    public Task<SiloComputeInfo> GetComputeInfo() =>
        Task.FromResult(new SiloComputeInfo(silo.SiloAddress.ToParsableString(), devices.Value.Devices.ToArray(), devices.Value.ThreadsPerRank));
}
