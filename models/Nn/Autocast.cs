using RAE.Configuration;
using RAE.Models.Runtime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

public static class ComputePrecisionTensors
{
    public static ScalarType ScalarType(this ComputePrecision precision) =>
        precision == ComputePrecision.BFloat16 ? TorchSharp.torch.ScalarType.BFloat16 : TorchSharp.torch.ScalarType.Float32;
}

/// <summary>
/// Mixed precision as torch.autocast does it, for the layers that ask: inside a bf16 scope, <see cref="Linear"/> runs on
/// bf16 casts of its input and of the fp32 parameters (autograd takes the gradients back to fp32 through the cast), and
/// attention runs on the bf16 projections. Everything else (norms, which compute in fp32; residual sums, which type
/// promotion keeps in fp32; losses; the optimizer) is untouched. Outside a scope, or in an fp32 one, every call is the
/// plain fp32 layer. The scope is per thread: a worker enters it around the forward pass it runs.
/// <para>With <c>cacheWeights</c> (sampling: weights fixed, no autograd) each parameter's cast, and derived weights such
/// as SwiGLU's padded matrices, are made once per scope instead of once per forward pass.</para>
/// </summary>
public sealed class Autocast : IDisposable
{
    [ThreadStatic] private static Autocast? current;

    private readonly Autocast? _previous;
    private readonly Dictionary<(IntPtr Handle, string Variant), Tensor>? _cache;
    private bool _disposed;

    private Autocast(ComputePrecision precision, bool cacheWeights)
    {
        Precision = precision;
        _cache = cacheWeights ? [] : null;
        _previous = current;
        current = this;
    }

    public ComputePrecision Precision { get; }

    /// <summary>The precision of the scope this thread is in (fp32 outside any scope).</summary>
    public static ComputePrecision CurrentPrecision => current?.Precision ?? ComputePrecision.Float32;

    /// <summary>Enters a scope on this thread until disposed (scopes nest; dispose in reverse order).</summary>
    public static Autocast Enter(ComputePrecision precision, bool cacheWeights = false) => new(precision, cacheWeights);

    /// <summary><paramref name="layer"/> applied in the current precision.</summary>
    public static Tensor Linear(Linear layer, Tensor input)
    {
        if (CurrentPrecision == ComputePrecision.Float32) return layer.forward(input);
        using var scope = NewDisposeScope();
        var weight = Weight(layer.weight!);
        var bias = layer.bias is null ? null : Weight(layer.bias);
        return Result(nn.functional.linear(Operand(input), weight, bias)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// An activation as a product's operand in the current precision: itself in fp32; its bf16 cast; or, where
    /// <see cref="Bf16Gemm"/> emulates, its bf16-rounded values in fp32 (the product then runs on the fp32 kernels).
    /// Belongs to the caller's dispose scope.
    /// </summary>
    public static Tensor Operand(Tensor activation)
    {
        if (CurrentPrecision == ComputePrecision.Float32) return activation.alias();
        return RoundToCompute(activation);
    }

    /// <summary>A product's result in the current precision: an emulated bf16 product's fp32 result rounded to bf16.</summary>
    public static Tensor Result(Tensor product) =>
        CurrentPrecision == ComputePrecision.BFloat16 && product.dtype != TorchSharp.torch.ScalarType.BFloat16
            ? product.to(TorchSharp.torch.ScalarType.BFloat16)
            : product;

    /// <summary>
    /// <c>scaled_dot_product_attention</c> on the projections as they are; bf16 ones on a CPU where <see cref="Bf16Gemm"/>
    /// emulates run in fp32 (their values are bf16 already) and come back as bf16.
    /// </summary>
    public static Tensor Attention(Tensor query, Tensor key, Tensor value)
    {
        if (query.dtype != TorchSharp.torch.ScalarType.BFloat16 || !Bf16Gemm.EmulatesOn(query.device))
        {
            return nn.functional.scaled_dot_product_attention(query, key, value);
        }
        using var scope = NewDisposeScope();
        var f32 = TorchSharp.torch.ScalarType.Float32;
        return nn.functional.scaled_dot_product_attention(query.to(f32), key.to(f32), value.to(f32))
            .to(TorchSharp.torch.ScalarType.BFloat16).MoveToOuterDisposeScope();
    }

    private static Tensor RoundToCompute(Tensor tensor)
    {
        var bf16 = TorchSharp.torch.ScalarType.BFloat16;
        if (!Bf16Gemm.EmulatesOn(tensor.device)) return tensor.dtype == bf16 ? tensor.alias() : tensor.to(bf16);
        if (tensor.dtype == bf16) return tensor.to(TorchSharp.torch.ScalarType.Float32);
        using var rounded = tensor.to(bf16);
        return rounded.to(TorchSharp.torch.ScalarType.Float32);
    }

    /// <summary>
    /// A parameter in the current precision: the parameter itself in fp32, else its (possibly cached) cast, as
    /// <see cref="Operand"/> makes it.
    /// </summary>
    public static Tensor Weight(Tensor parameter) => Derived(parameter, "cast", cast => cast.alias());

    /// <summary>
    /// <paramref name="derive"/> applied to the parameter in the current precision; inside a caching scope with autograd
    /// off, made once per (parameter, variant) and kept until the scope ends. The result belongs to the caller's dispose
    /// scope unless cached (then the cache owns it: do not dispose it).
    /// </summary>
    public static Tensor Derived(Tensor parameter, string variant, Func<Tensor, Tensor> derive)
    {
        var scope = current;
        var cache = scope?._cache is { } c && !is_grad_enabled() ? c : null;
        if (cache is not null && cache.TryGetValue((parameter.Handle, variant), out var cached)) return cached.alias();
        Tensor result;
        using (var temporaries = NewDisposeScope())
        {
            var cast = CurrentPrecision == ComputePrecision.Float32 ? parameter.alias() : RoundToCompute(parameter);
            result = derive(cast).MoveToOuterDisposeScope();
        }
        if (cache is null) return result;
        cache[(parameter.Handle, variant)] = result.DetachFromDisposeScope();
        return result.alias();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (current != this) throw new InvalidOperationException("autocast scopes must be disposed in reverse order of entry, on the thread that entered them");
        current = _previous;
        if (_cache is null) return;
        foreach (var tensor in _cache.Values) tensor.Dispose();
        _cache.Clear();
    }
}
