using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>The discriminator objective (<c>gan.loss.disc_loss</c>).</summary>
public enum DiscriminatorLossKind
{
    Hinge,
    Vanilla,
}

/// <summary>The discriminator-step losses of <c>src/disc</c> and the logged accuracy.</summary>
public static class DiscriminatorLosses
{
    public static DiscriminatorLossKind Parse(string name) => name switch
    {
        "hinge" => DiscriminatorLossKind.Hinge,
        "vanilla" => DiscriminatorLossKind.Vanilla,
        _ => throw new ArgumentException($"gan.loss.disc_loss '{name}' is not supported (hinge, vanilla)"),
    };

    public static Tensor Compute(DiscriminatorLossKind kind, Tensor logitsReal, Tensor logitsFake) => kind switch
    {
        DiscriminatorLossKind.Hinge => Hinge(logitsReal, logitsFake),
        DiscriminatorLossKind.Vanilla => Vanilla(logitsReal, logitsFake),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown discriminator loss"),
    };

    /// <summary>0.5·(mean(relu(1 − real)) + mean(relu(1 + fake))).</summary>
    public static Tensor Hinge(Tensor logitsReal, Tensor logitsFake)
    {
        using var scope = NewDisposeScope();
        var real = F.relu(1.0 - logitsReal).mean();
        var fake = F.relu(1.0 + logitsFake).mean();
        return (0.5 * (real + fake)).MoveToOuterDisposeScope();
    }

    /// <summary>0.5·(mean(softplus(−real)) + mean(softplus(fake))).</summary>
    public static Tensor Vanilla(Tensor logitsReal, Tensor logitsFake)
    {
        using var scope = NewDisposeScope();
        var real = F.softplus(-logitsReal).mean();
        var fake = F.softplus(logitsFake).mean();
        return (0.5 * (real + fake)).MoveToOuterDisposeScope();
    }

    /// <summary>mean(real &gt; fake) over all logits, the logged discriminator accuracy.</summary>
    public static Tensor Accuracy(Tensor logitsReal, Tensor logitsFake)
    {
        using var greater = logitsReal.gt(logitsFake);
        using var asFloat = greater.to(float32);
        return asFloat.mean();
    }
}
