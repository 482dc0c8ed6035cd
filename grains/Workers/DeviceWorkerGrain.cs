using Microsoft.Extensions.Options;
using RAE.GrainInterfaces;
using RAE.Grains.Placement;

namespace RAE.Grains.Workers;

/// <summary>
/// What the unit workers of one device of one silo (sampling, shard encoding, evaluation) share: the device named by the
/// grain key's suffix (<c>&lt;role&gt;:&lt;device&gt;</c>), and the dedicated worker thread, created on first use with the
/// silo's <see cref="RankDeviceOptions.ThreadsPerRank"/>, that does every tensor operation of the activation; the units
/// it runs, which a job's cancel reaches through <see cref="CancelUnits"/>. Deactivation frees what the thread holds on the
/// thread itself and stops it without blocking the grain turn.
/// </summary>
/// <param name="role">The key suffix's role (<c>sampler</c>, <c>encoder</c>, <c>evaluator</c>); it also names the thread.</param>
public abstract class DeviceWorkerGrain(string role, IOptions<RankDeviceOptions> devices) : Grain
{
    private DedicatedWorkerThread? _thread;
    /// <summary>The cancellation of each unit running now, by job (touched on grain turns only).</summary>
    private readonly Dictionary<string, List<CancellationTokenSource>> _runningUnits = new(StringComparer.Ordinal);

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

    /// <summary>Cancels the job's running units (an interleaving call: it is answered while a unit runs).</summary>
    public Task CancelUnits(string jobId)
    {
        if (_runningUnits.TryGetValue(jobId, out var running))
            foreach (var unit in running) unit.Cancel();
        return Task.CompletedTask;
    }

    /// <summary>Runs one unit of <paramref name="jobId"/> with a token that <see cref="CancelUnits"/> cancels.</summary>
    protected async Task<T> RunCancellableUnitAsync<T>(string jobId, Func<CancellationToken, Task<T>> unit)
    {
        using var cancellation = new CancellationTokenSource();
        if (!_runningUnits.TryGetValue(jobId, out var running)) _runningUnits[jobId] = running = [];
        running.Add(cancellation);
        try
        {
            return await unit(cancellation.Token);
        }
        finally
        {
            running.Remove(cancellation);
            if (running.Count == 0) _runningUnits.Remove(jobId);
        }
    }

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
        // After the models are freed, the heap's free pages go back to the kernel (the tuned allocator keeps them otherwise).
        if (release is not null)
            _ = thread.InvokeAsync(() =>
            {
                release();
                RAE.Models.Runtime.NativeMemoryTuning.ReturnFreeMemory();
            });
        // Awaited, never joined: a thread still busy with a long unit keeps running while the deactivation goes on.
        await thread.StopAsync(cancellationToken);
    }
}
