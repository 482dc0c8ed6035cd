namespace RAE.Grains.Collectives;

/// <summary>
/// How much of a gradient vector backward has finished: a prefix [0, <see cref="Ready"/>) that only grows. The rank's
/// worker thread advances it from inside backward (a block's gradients are final, see
/// <c>RAE.Models.Training.BackwardProgressMarker</c>); the all-reduce's threads wait on it piece by piece, so the
/// reduction of the last layers runs while the first ones are still in backward (PyTorch DDP's bucketed overlap).
/// The rank grain completes it when the gradient computation returns, or fails it when that throws.
/// </summary>
public sealed class GradientReadiness
{
    private readonly object _gate = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _ready;
    private Exception? _failure;

    public GradientReadiness(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        if (length == 0) _completion.SetResult();
    }

    public int Length { get; }

    /// <summary>Elements from the start of the vector that are final.</summary>
    public int Ready => Volatile.Read(ref _ready);

    /// <summary>Marks [0, <paramref name="elements"/>) final. A smaller value than before changes nothing and a larger one
    /// than <see cref="Length"/> counts as the whole vector: it never throws, since it is called inside libtorch's backward.</summary>
    public void Advance(int elements)
    {
        elements = Math.Clamp(elements, 0, Length);
        if (elements <= Volatile.Read(ref _ready)) return;
        lock (_gate)
        {
            if (_failure is not null || elements <= _ready) return;
            Volatile.Write(ref _ready, elements);
            Monitor.PulseAll(_gate);
        }
        if (elements == Length) _completion.TrySetResult();
    }

    /// <summary>The whole vector is final (the gradient computation returned).</summary>
    public void Complete() => Advance(Length);

    /// <summary>The gradient computation failed: every wait ends with a <see cref="CollectiveException"/> naming it.</summary>
    public void Fail(Exception reason)
    {
        ArgumentNullException.ThrowIfNull(reason);
        lock (_gate)
        {
            if (_failure is not null || _ready == Length) return;
            _failure = reason;
            Monitor.PulseAll(_gate);
        }
        _completion.TrySetException(Failed());
    }

    /// <summary>Blocks until [0, <paramref name="elements"/>) is final. Throws a <see cref="CollectiveException"/> when the
    /// computation failed, and an <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires.</summary>
    public void WaitFor(int elements, CancellationToken cancellationToken)
    {
        elements = Math.Min(elements, Length);
        if (Volatile.Read(ref _ready) >= elements) return;
        using var wake = cancellationToken.Register(() =>
        {
            lock (_gate) Monitor.PulseAll(_gate);
        });
        lock (_gate)
        {
            while (_ready < elements)
            {
                if (_failure is not null) throw Failed();
                cancellationToken.ThrowIfCancellationRequested();
                Monitor.Wait(_gate);
            }
        }
    }

    /// <summary>Completes with the vector, or faults with the <see cref="CollectiveException"/> of a failed computation.</summary>
    public Task WhenComplete => _completion.Task;

    private CollectiveException Failed() =>
        new($"the gradients being all-reduced were never finished: the gradient computation failed after {_ready:N0} of {Length:N0} values ({_failure!.Message})", _failure);
}
