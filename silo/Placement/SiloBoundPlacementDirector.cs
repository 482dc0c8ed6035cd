using Orleans.Runtime.Placement;
using RAE.GrainInterfaces;

namespace RAE.Silo.Placement;

/// <summary>Activates a silo-bound grain on the silo its key names, and refuses when that silo is not an active member.</summary>
public sealed class SiloBoundPlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString() ?? "";
        var (silo, _) = SiloBoundKey.Parse(key);
        var compatible = context.GetCompatibleSilos(target);
        if (!compatible.Contains(silo))
            throw new OrleansException($"Grain '{target.GrainIdentity}' is bound to silo {silo}, which is not an active member of the cluster (active: {string.Join(", ", compatible.Select(s => s.ToString()))}).");
        return Task.FromResult(silo);
    }
}
