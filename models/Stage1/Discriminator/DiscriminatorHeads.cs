using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>The head normalisation (<c>norm_type</c>): "bn" is <see cref="BatchNormLocal"/> with virtual batch 1, "gn" GroupNorm(32).</summary>
public enum HeadNorm
{
    BatchNormLocal,
    GroupNorm,
}

/// <param name="KernelSize">Kernel of the residual block's circular conv (<c>ks</c>, 9 in the released config).</param>
/// <param name="Norm">The norm after the first two convs (<c>norm_type</c>).</param>
/// <param name="SpectralNorm">Whether every conv carries spectral norm (<c>using_spec_norm</c>).</param>
public sealed record DiscriminatorHeadOptions(int KernelSize = 9, HeadNorm Norm = HeadNorm.BatchNormLocal, bool SpectralNorm = true)
{
    public const double BatchNormLocalEps = 1e-6;
    public const int GroupNormGroups = 32;

    /// <summary>Parses the reference <c>norm_type</c> value.</summary>
    public static HeadNorm ParseNorm(string normType) => normType switch
    {
        "bn" => HeadNorm.BatchNormLocal,
        "gn" => HeadNorm.GroupNorm,
        _ => throw new ArgumentException($"discriminator norm_type '{normType}' is not supported (bn, gn)"),
    };
}

/// <summary>
/// The StyleGAN-T-style discriminator heads on 1-D token sequences [B,C,L]. Each head is
/// <c>0</c>: conv k=1 + norm + LeakyReLU(0.2); <c>1</c>: residual block <c>(fn(x) + x)·(1/√2)</c> with
/// <c>fn</c> = circular conv k=ks + norm + LeakyReLU(0.2); <c>2</c>: conv to one channel. Keys follow the reference:
/// <c>{h}.0.0.*</c>, <c>{h}.0.1.*</c>, <c>{h}.1.fn.0.*</c>, <c>{h}.1.fn.1.*</c>, <c>{h}.2.*</c>.
/// </summary>
public static class DiscriminatorHeads
{
    public const double LeakySlope = 0.2;

    public static ModuleList<nn.Module<Tensor, Tensor>> Create(long channels, int count, DiscriminatorHeadOptions options, Generator? generator = null)
    {
        if (count <= 0) throw new ArgumentException($"a discriminator needs at least one head, got {count}");
        return Create(Enumerable.Repeat(channels, count).ToArray(), options, generator);
    }

    /// <summary>One head per feature map, head h reading <paramref name="channels"/>[h] channels.</summary>
    public static ModuleList<nn.Module<Tensor, Tensor>> Create(IReadOnlyList<long> channels, DiscriminatorHeadOptions options, Generator? generator = null)
    {
        if (channels.Count == 0) throw new ArgumentException("a discriminator needs at least one head");
        if (options.KernelSize <= 0 || options.KernelSize % 2 == 0)
            throw new ArgumentException($"discriminator head kernel size (ks) must be odd and positive, got {options.KernelSize}");
        if (options.Norm == HeadNorm.GroupNorm && channels.Any(c => c % DiscriminatorHeadOptions.GroupNormGroups != 0))
            throw new ArgumentException(
                $"norm_type gn needs channels divisible by {DiscriminatorHeadOptions.GroupNormGroups}, got [{string.Join(", ", channels)}]");
        return new ModuleList<nn.Module<Tensor, Tensor>>(channels.Select(c => CreateHead(c, options, generator)).ToArray());
    }

    /// <summary>Runs head h on feature map h and concatenates the flattened outputs: [B, Σ L_h].</summary>
    public static Tensor Logits(ModuleList<nn.Module<Tensor, Tensor>> heads, IReadOnlyList<Tensor> features)
    {
        if (features.Count != heads.Count)
            throw new ArgumentException($"{heads.Count} discriminator heads need {heads.Count} feature maps, got {features.Count}");
        using var scope = NewDisposeScope();
        var batch = features[0].shape[0];
        var logits = new Tensor[heads.Count];
        for (var h = 0; h < heads.Count; h++) logits[h] = heads[h].forward(features[h]).view(batch, -1);
        return cat(logits, 1).MoveToOuterDisposeScope();
    }

    private static nn.Module<Tensor, Tensor> CreateHead(long channels, DiscriminatorHeadOptions options, Generator? generator) =>
        nn.Sequential(
            ("0", Block(channels, 1, options, generator)),
            ("1", new ResidualBlock(Block(channels, options.KernelSize, options, generator))),
            ("2", Conv(channels, 1, 1, options, generator)));

    private static nn.Module<Tensor, Tensor> Block(long channels, int kernelSize, DiscriminatorHeadOptions options, Generator? generator) =>
        nn.Sequential(
            ("0", Conv(channels, channels, kernelSize, options, generator)),
            ("1", Norm(channels, options)),
            ("2", nn.LeakyReLU(LeakySlope)));

    private static nn.Module<Tensor, Tensor> Conv(long inChannels, long outChannels, int kernelSize, DiscriminatorHeadOptions options, Generator? generator) =>
        options.SpectralNorm
            ? new SpectralNormConv1d(inChannels, outChannels, kernelSize, circularPadding: true, generator)
            : new CircularConv1d(inChannels, outChannels, kernelSize, circularPadding: true, generator);

    private static nn.Module<Tensor, Tensor> Norm(long channels, DiscriminatorHeadOptions options) => options.Norm switch
    {
        HeadNorm.BatchNormLocal => new BatchNormLocal(channels, virtualBatchSize: 1, DiscriminatorHeadOptions.BatchNormLocalEps),
        HeadNorm.GroupNorm => nn.GroupNorm(DiscriminatorHeadOptions.GroupNormGroups, channels),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Norm, "unknown head norm"),
    };
}

/// <summary><c>(fn(x) + x)·float32(1/√2)</c>, the multiplication the reference performs in place (not a division).</summary>
public sealed class ResidualBlock : nn.Module<Tensor, Tensor>
{
    private static readonly double InverseSqrtTwo = (float)(1.0 / Math.Sqrt(2.0));

    private readonly nn.Module<Tensor, Tensor> fn;

    public ResidualBlock(nn.Module<Tensor, Tensor> function) : base(nameof(ResidualBlock))
    {
        fn = function;
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var residual = fn.forward(input);
        using var sum = residual + input;
        return sum.mul(InverseSqrtTwo);
    }
}
