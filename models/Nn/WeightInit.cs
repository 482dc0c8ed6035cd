using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>In-place initialisers that draw from an optional generator (reproducible training from scratch).</summary>
public static class WeightInit
{
    /// <summary>PyTorch's default Linear/Conv init: weight and bias U(−1/√fan_in, 1/√fan_in) (Kaiming-uniform with a = √5).</summary>
    public static void PyTorchDefault(Tensor weight, Tensor? bias, Generator? generator)
    {
        using var guard = no_grad();
        var fanIn = weight.numel() / weight.shape[0];
        var bound = fanIn > 0 ? 1.0 / Math.Sqrt(fanIn) : 0;
        weight.uniform_(-bound, bound, generator);
        bias?.uniform_(-bound, bound, generator);
    }

    /// <summary>Xavier-uniform on the weight viewed as 2-D [out, in·k·k]: U(±√(6 / (fan_in + fan_out))).</summary>
    public static void XavierUniform(Tensor weight, Generator? generator)
    {
        using var guard = no_grad();
        var fanOut = weight.shape[0];
        var fanIn = weight.numel() / fanOut;
        var bound = Math.Sqrt(6.0 / (fanIn + fanOut));
        weight.uniform_(-bound, bound, generator);
    }

    public static void Normal(Tensor tensor, double std, Generator? generator)
    {
        using var guard = no_grad();
        tensor.normal_(0, std, generator);
    }

    public static void Zero(Tensor? tensor)
    {
        if (tensor is null) return;
        using var guard = no_grad();
        tensor.zero_();
    }

    public static void Zero(Linear linear)
    {
        Zero(linear.weight);
        Zero(linear.bias);
    }

    /// <summary>Every Linear below <paramref name="root"/> (in registration order), with its weight and bias.</summary>
    public static IEnumerable<Linear> Linears(nn.Module root) => root.modules().OfType<Linear>();
}
