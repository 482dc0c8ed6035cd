using Orleans.Placement;

namespace RAE.Grains.Placement;

/// <summary>
/// Places a grain on the silo named in its key (see <see cref="RAE.GrainInterfaces.SiloBoundKey"/>). Rank grains use it
/// so that the rank for "silo A, cuda:0" runs on silo A and nowhere else; the director lives in the silo project.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class SiloBoundPlacement : PlacementStrategy
{
    public static SiloBoundPlacement Instance { get; } = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class SiloBoundPlacementAttribute() : PlacementAttribute(SiloBoundPlacement.Instance);
