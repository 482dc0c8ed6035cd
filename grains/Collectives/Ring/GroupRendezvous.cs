using System.Security.Cryptography;
using RAE.GrainInterfaces;

namespace RAE.Grains.Collectives.Ring;

/// <summary>
/// The rendezvous state a collective group grain keeps for transports that move bytes outside Orleans: the ring's
/// endpoints and token, the NCCL unique id, and the abort signal those transports long-poll. One per group generation.
/// </summary>
internal sealed class GroupRendezvous(string group)
{
    private readonly TaskCompletionSource<string> _aborted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<RingRendezvous> _ringFormed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<byte[]> _ncclId = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RingEndpoint?[] _endpoints = [];

    /// <summary>16 random bytes, fresh for every activation of the group: a peer of another generation cannot know them.</summary>
    public byte[] Token { get; } = RandomNumberGenerator.GetBytes(16);

    public async Task<RingRendezvous> JoinRing(int rank, int worldSize, RingEndpoint endpoint, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (endpoint.Port is < 1 or > 65535 || string.IsNullOrWhiteSpace(endpoint.Host))
            throw new ArgumentException($"Rank {rank} registered an unusable ring endpoint '{endpoint.Host}:{endpoint.Port}'.", nameof(endpoint));
        if (_endpoints.Length == 0) _endpoints = new RingEndpoint?[worldSize];
        if (_endpoints[rank] is { } known && known != endpoint)
            throw new CollectiveException($"Group '{group}': rank {rank} already joined the ring at {known.Host}:{known.Port}; a group generation forms its ring once.");
        _endpoints[rank] = endpoint;
        if (_endpoints.All(e => e is not null))
            _ringFormed.TrySetResult(new RingRendezvous(_endpoints.Select(e => e!).ToArray(), Token, timeout));
        try
        {
            return await _ringFormed.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            var missing = Enumerable.Range(0, worldSize).Where(r => _endpoints[r] is null);
            throw new CollectiveException($"Group '{group}' ring rendezvous: rank(s) {string.Join(", ", missing)} did not register within {timeout.TotalSeconds:0.#} s; their silo may be gone.");
        }
    }

    public async Task<byte[]> ExchangeNcclId(int rank, byte[]? uniqueId, TimeSpan timeout)
    {
        if ((rank == 0) != (uniqueId is not null))
            throw new ArgumentException($"Group '{group}': only rank 0 passes the NCCL unique id; rank {rank} {(uniqueId is null ? "passed none" : "passed one")}.", nameof(uniqueId));
        if (uniqueId is not null && !_ncclId.TrySetResult(uniqueId))
            throw new CollectiveException($"Group '{group}': rank 0 published its NCCL unique id twice.");
        try
        {
            return await _ncclId.Task.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new CollectiveException($"Group '{group}': rank 0 did not publish its NCCL unique id within {timeout.TotalSeconds:0.#} s.");
        }
    }

    public async Task<string?> WaitForAbort(TimeSpan maxWait)
    {
        try
        {
            return await _aborted.Task.WaitAsync(maxWait);
        }
        catch (TimeoutException)
        {
            return null;
        }
    }

    public void Abort(string reason)
    {
        _aborted.TrySetResult(reason);
        var error = new CollectiveException($"Group '{group}' was aborted: {reason}");
        _ringFormed.TrySetException(error);
        _ncclId.TrySetException(error);
    }
}
