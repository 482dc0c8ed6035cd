using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>
/// One flat fp32 gradient vector for a parameter list, as PyTorch DDP's <c>gradient_as_bucket_view</c>: each parameter's
/// <c>.grad</c> is a view of it, so backward accumulates straight into the vector (autograd adds into a defined
/// gradient in place) and a data-parallel rank hands <see cref="Host"/> to its all-reduce as it is. On the CPU the
/// vector's storage is <see cref="Host"/> itself, a managed array allocated once, pinned, and shared with libtorch.
/// Before, every step built the vector with a 786 MB <c>cat</c>, copied it into a fresh managed array, then copied the
/// mean back into a fresh tensor and cloned it per parameter: four passes over freshly faulted memory that took
/// 3–5 s of a 21 s DiT^DH-S step on a 2-core host. On a GPU the vector lives on the device and
/// <see cref="Publish"/>/<see cref="Load"/> each copy it once across.
/// </summary>
public sealed class FlatGradientBuffer : IDisposable
{
    private readonly Parameter[] _parameters;
    private readonly Tensor _host;
    private readonly Tensor _flat;
    private readonly Tensor[] _views;
    private bool _disposed;

    public FlatGradientBuffer(IReadOnlyList<Parameter> parameters, Device device)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(device);
        _parameters = parameters.ToArray();
        foreach (var parameter in _parameters)
        {
            if (parameter.dtype != ScalarType.Float32)
                throw new ArgumentException($"a flat gradient buffer holds fp32 gradients; a parameter of shape [{string.Join(", ", parameter.shape)}] is {parameter.dtype}", nameof(parameters));
            if (parameter.device_type != device.type)
                throw new ArgumentException($"a parameter lives on {parameter.device}, the buffer on {device}", nameof(parameters));
        }
        var length = _parameters.Sum(p => p.numel());
        if (length > Array.MaxLength)
            throw new ArgumentException($"{length:N0} gradients exceed one managed array ({Array.MaxLength:N0} elements)", nameof(parameters));
        Host = GC.AllocateUninitializedArray<float>((int)length, pinned: true);
        _host = from_array(Host);
        _flat = device.type == DeviceType.CPU ? _host : zeros(length, device: device);
        _views = new Tensor[_parameters.Length];
        long offset = 0;
        for (var i = 0; i < _parameters.Length; i++)
        {
            var count = _parameters[i].numel();
            // The slice is a second handle on the storage: left to its finalizer it would keep the pinned array alive.
            using var slice = _flat.narrow(0, offset, count);
            _views[i] = slice.view(_parameters[i].shape);
            offset += count;
        }
    }

    /// <summary>The gradients in parameter order; on the CPU the very memory backward writes into.</summary>
    public float[] Host { get; }

    public int Length => Host.Length;

    /// <summary>The vector as one tensor on the parameters' device (valid after <see cref="Attach"/> or <see cref="Load"/>).</summary>
    public Tensor Flat => _flat;

    /// <summary>Zeroes the vector and makes it every parameter's <c>.grad</c>: the start of a step's backward passes.</summary>
    public void Attach()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _flat.zero_();
        Bind();
    }

    /// <summary>The accumulated gradients as <see cref="Host"/> (a device buffer is copied down first).</summary>
    public float[] Publish()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_flat.device_type != DeviceType.CPU) _host.copy_(_flat);
        return Host;
    }

    /// <summary>
    /// Makes <paramref name="gradients"/> (parameter order) every parameter's <c>.grad</c>; <see cref="Host"/> itself is
    /// taken as it is (the all-reduce left its mean there), any other vector is copied into it.
    /// </summary>
    public void Load(float[] gradients)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(gradients);
        if (gradients.Length != Host.Length)
            throw new ArgumentException($"got {gradients.Length:N0} gradients for {Host.Length:N0} parameters", nameof(gradients));
        if (!ReferenceEquals(gradients, Host)) gradients.AsSpan().CopyTo(Host);
        if (_flat.device_type != DeviceType.CPU) _flat.copy_(_host);
        Bind();
    }

    private void Bind()
    {
        for (var i = 0; i < _parameters.Length; i++) _parameters[i].grad = _views[i];
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        // Parameters that outlive the buffer drop their views; the array stays pinned until libtorch frees the last one.
        foreach (var parameter in _parameters)
        {
            if (!parameter.IsInvalid) parameter.grad = null;
        }
        foreach (var view in _views) view.Dispose();
        if (!ReferenceEquals(_flat, _host)) _flat.Dispose();
        _host.Dispose();
    }
}
