using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// Conv1d under <c>torch.nn.utils.spectral_norm</c> (dim 0, one power iteration, eps 1e-12), with optional circular
/// padding. State-dict keys as PyTorch writes them: <c>weight_orig</c>, <c>bias</c>, buffers <c>weight_u</c> [out] and
/// <c>weight_v</c> [in·k]. In training mode each forward first advances u and v in place (no grad):
/// v ← normalize(Wᵀu), u ← normalize(W v); in eval mode the stored u, v are used as they are. The convolution uses
/// weight_orig / σ with σ = u·(W v), the gradient flowing through W only.
/// </summary>
public sealed class SpectralNormConv1d : nn.Module<Tensor, Tensor>
{
    public const double NormalizeEps = 1e-12;

    private readonly Parameter weight_orig;
    private readonly Parameter bias;
    private readonly Tensor weight_u;
    private readonly Tensor weight_v;
    private readonly long _padding;
    private readonly bool _circular;

    /// <param name="generator">Draws the weights (PyTorch's Conv1d default, U(±1/√fan_in)) and the initial u, v (normalised N(0,1)).</param>
    public SpectralNormConv1d(long inChannels, long outChannels, long kernelSize, bool circularPadding, Generator? generator = null)
        : base(nameof(SpectralNormConv1d))
    {
        if (inChannels <= 0 || outChannels <= 0 || kernelSize <= 0)
            throw new ArgumentException($"spectral-norm conv1d needs positive sizes, got in {inChannels}, out {outChannels}, kernel {kernelSize}");
        _padding = kernelSize / 2;
        _circular = circularPadding;
        var bound = 1.0 / Math.Sqrt(inChannels * kernelSize);
        weight_orig = new Parameter(empty(outChannels, inChannels, kernelSize).uniform_(-bound, bound, generator));
        bias = new Parameter(empty(outChannels).uniform_(-bound, bound, generator));
        using (var u = randn(new[] { outChannels }, generator: generator))
            weight_u = Normalize(u);
        using (var v = randn(new[] { inChannels * kernelSize }, generator: generator))
            weight_v = Normalize(v);
        register_parameter(nameof(weight_orig), weight_orig);
        register_parameter(nameof(bias), bias);
        register_buffer(nameof(weight_u), weight_u);
        register_buffer(nameof(weight_v), weight_v);
    }

    public Parameter WeightOrig => weight_orig;

    /// <summary>The power-iteration vectors (live buffers; do not dispose).</summary>
    public Tensor U => weight_u;

    public Tensor V => weight_v;

    /// <summary>σ = u·(W v) with the current u, v, without gradient (what the next eval-mode forward divides by).</summary>
    public Tensor Sigma()
    {
        using var noGrad = no_grad();
        using var matrix = weight_orig.reshape(weight_orig.shape[0], -1);
        using var wv = matrix.mv(weight_v);
        return weight_u.dot(wv).reshape(1);
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var matrix = weight_orig.reshape(weight_orig.shape[0], -1);
        if (training)
        {
            using var noGrad = no_grad();
            using var v = Normalize(matrix.t().mv(weight_u));
            weight_v.copy_(v);
            using var u = Normalize(matrix.mv(weight_v));
            weight_u.copy_(u);
        }
        // Clones, as PyTorch takes after the iteration: autograd saves u and v, and the next train-mode pass updates the buffers in place.
        var sigma = weight_u.clone().dot(matrix.mv(weight_v.clone()));
        var weight = weight_orig / sigma;
        var padded = _circular && _padding > 0 ? F.pad(input, [_padding, _padding], PaddingModes.Circular) : input;
        return F.conv1d(padded, weight, bias, padding: _circular ? 0 : _padding).MoveToOuterDisposeScope();
    }

    /// <summary>x / max(‖x‖, 1e-12), as <c>torch.nn.functional.normalize(x, dim=0, eps=1e-12)</c>.</summary>
    private static Tensor Normalize(Tensor vector)
    {
        using var norm = vector.norm();
        using var denominator = norm.clamp_min(NormalizeEps);
        return vector / denominator;
    }
}
