using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;

namespace RAE.Grains.Workers;

/// <summary>
/// What the unit workers of one device of one silo (sampling, shard encoding, evaluation) share: the device named by the
/// grain key's suffix (<c>&lt;role&gt;:&lt;device&gt;</c>), and the dedicated worker thread, created on first use with the
/// silo's <see cref="RankDeviceOptions.ThreadsPerRank"/>, that does every tensor operation of the activation. Deactivation
/// frees what the thread holds on the thread itself and stops it without blocking the grain turn.
/// </summary>
/// <param name="role">The key suffix's role (<c>sampler</c>, <c>encoder</c>, <c>evaluator</c>); it also names the thread.</param>
public abstract class DeviceWorkerGrain(string role, IOptions<RankDeviceOptions> devices) : Grain
{
    private DedicatedWorkerThread? _thread;

    /// <summary>The device of this worker, from its key.</summary>
    protected string Device
    {
        get
        {
            var key = this.GetPrimaryKeyString();
            var (_, suffix) = SiloBoundKey.Parse(key);
            var prefix = role + ":";
            return suffix.StartsWith(prefix, StringComparison.Ordinal) && suffix.Length > prefix.Length ? suffix[prefix.Length..]
                : throw new RaeJobException($"Grain key '{key}' is not a {role} key (it has no '{prefix}<device>' suffix).");
        }
    }

    protected DedicatedWorkerThread Thread => _thread ??= new DedicatedWorkerThread($"rae-{role}-{Device}", devices.Value.ThreadsPerRank);

    /// <summary>
    /// Takes what the worker thread holds (loaded models) from the activation and returns the work that frees it; that work
    /// runs on the thread, after anything queued before it. Null when nothing is held.
    /// </summary>
    protected abstract Action? TakeHeldResources();

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        var release = TakeHeldResources();
        if (_thread is not { } thread) return;
        _thread = null;
        if (release is not null) _ = thread.InvokeAsync(release);
        // Awaited, never joined: a thread still busy with a long unit keeps running while the deactivation goes on.
        await thread.StopAsync(cancellationToken);
    }
}
