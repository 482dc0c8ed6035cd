using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using RAE.Grains.Storage;

namespace RAE.Cluster.Tests.Checkpoints;

/// <summary>
/// Wraps a silo's real blob store; a test switches outages on for the paths it picks. A failing operation throws what
/// the real store throws once its bounded retries are spent: <see cref="BlobStoreUnavailableException"/>.
/// </summary>
public sealed class FaultInjectingBlobStore(IBlobStore inner) : IBlobStore
{
    private readonly ConcurrentDictionary<Outage, bool> outages = new();

    public IBlobStore Inner => inner;

    public string Location => inner.Location;

    /// <summary>
    /// From the first operation on a path that <paramref name="trigger"/> accepts, every operation on a path that
    /// <paramref name="scope"/> accepts fails, <paramref name="failures"/> times (null: until the outage is disposed).
    /// </summary>
    public Outage FailFrom(Func<string, bool> scope, Func<string, bool> trigger, int? failures = null) =>
        Add(new Outage(this, scope, trigger, failures, hold: false));

    /// <summary>The first put of a path that <paramref name="match"/> accepts waits until <see cref="Outage.Release"/>,
    /// then fails as a writer that died mid-upload would look to its caller; everything else passes.</summary>
    public Outage HoldThenFailPut(Func<string, bool> match) => Add(new Outage(this, match, match, failures: 1, hold: true));

    private Outage Add(Outage outage)
    {
        outages[outage] = true;
        return outage;
    }

    public Task EnsureAvailableAsync(CancellationToken cancellationToken = default) => inner.EnsureAvailableAsync(cancellationToken);

    public async Task<BlobInfo> PutAsync(string path, Stream content, IReadOnlyDictionary<string, string>? metadata = null, CancellationToken cancellationToken = default)
    {
        await FaultAsync("put", path, isPut: true);
        return await inner.PutAsync(path, content, metadata, cancellationToken);
    }

    public async Task<BlobContent> GetAsync(string path, CancellationToken cancellationToken = default)
    {
        await FaultAsync("get", path);
        return await inner.GetAsync(path, cancellationToken);
    }

    public async Task<Stream> OpenReadAsync(string path, CancellationToken cancellationToken = default)
    {
        await FaultAsync("open", path);
        return await inner.OpenReadAsync(path, cancellationToken);
    }

    public async Task<BlobInfo> GetInfoAsync(string path, CancellationToken cancellationToken = default)
    {
        await FaultAsync("get info", path);
        return await inner.GetInfoAsync(path, cancellationToken);
    }

    public async Task<bool> ExistsAsync(string path, CancellationToken cancellationToken = default)
    {
        await FaultAsync("exists", path);
        return await inner.ExistsAsync(path, cancellationToken);
    }

    public async IAsyncEnumerable<BlobInfo> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await FaultAsync("list", prefix);
        await foreach (var blob in inner.ListAsync(prefix, cancellationToken)) yield return blob;
    }

    public async Task<bool> DeleteAsync(string path, CancellationToken cancellationToken = default)
    {
        await FaultAsync("delete", path);
        return await inner.DeleteAsync(path, cancellationToken);
    }

    public async Task<PointerUpdateResult> TryUpdatePointerAsync(string path, string newValue, string? expectedEtag, CancellationToken cancellationToken = default)
    {
        await FaultAsync("update pointer", path);
        return await inner.TryUpdatePointerAsync(path, newValue, expectedEtag, cancellationToken);
    }

    public async Task<BlobPointer?> ReadPointerAsync(string path, CancellationToken cancellationToken = default)
    {
        await FaultAsync("read pointer", path);
        return await inner.ReadPointerAsync(path, cancellationToken);
    }

    private async Task FaultAsync(string operation, string path, bool isPut = false)
    {
        foreach (var outage in outages.Keys)
        {
            if (!await outage.ShouldFailAsync(path, isPut)) continue;
            throw new BlobStoreUnavailableException(path,
                $"{operation} '{path}' on {inner.Location} failed after 4 attempt(s): IOException: injected outage ({outage.Describe})", 4);
        }
    }

    public sealed class Outage : IDisposable
    {
        private readonly FaultInjectingBlobStore store;
        private readonly Func<string, bool> scope;
        private readonly Func<string, bool> trigger;
        private readonly bool hold;
        private readonly TaskCompletionSource<string> held = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly object gate = new();
        private int? remaining;
        private bool triggered;
        private int failed;

        internal Outage(FaultInjectingBlobStore store, Func<string, bool> scope, Func<string, bool> trigger, int? failures, bool hold)
        {
            this.store = store;
            this.scope = scope;
            this.trigger = trigger;
            this.hold = hold;
            remaining = failures;
        }

        /// <summary>Operations failed so far.</summary>
        public int Failed
        {
            get { lock (gate) return failed; }
        }

        /// <summary>The path of the held put, once it arrived (<see cref="HoldThenFailPut"/>).</summary>
        public Task<string> Held => held.Task;

        internal string Describe => hold ? "the writer died mid-upload" : "storage switched off by the test";

        public void Release() => released.TrySetResult();

        /// <summary>Ends the outage: later operations pass.</summary>
        public void Dispose()
        {
            store.outages.TryRemove(this, out _);
            Release();
        }

        internal async Task<bool> ShouldFailAsync(string path, bool isPut)
        {
            if (hold)
            {
                if (!isPut || !trigger(path)) return false;
                lock (gate)
                {
                    if (remaining == 0) return false;
                    remaining--;
                    failed++;
                }
                held.TrySetResult(path);
                await released.Task;
                return true;
            }

            if (!scope(path)) return false;
            lock (gate)
            {
                if (!triggered && !trigger(path)) return false;
                triggered = true;
                if (remaining == 0) return false;
                if (remaining is not null) remaining--;
                failed++;
                return true;
            }
        }
    }
}
