using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>How a GAN loss reduces its per-logit terms: the reference treats every string other than "mean" as a sum.</summary>
public enum GanLossReduction
{
    Mean,
    Sum,
}

/// <summary>
/// The discriminator and generator losses of the reference's <c>disc/gan_loss.py</c> (spec §4.4), the discriminator
/// accuracy it logs, and the 8-bit quantisation of fakes before the discriminator step. PyTorch's conventions matter at
/// the edges: relu'(0) = 0 (logits exactly at the hinge get no gradient) and softplus returns x above 20.
/// </summary>
public static class GanLosses
{
    public const string Hinge = "hinge";
    public const string Vanilla = "vanilla";

    /// <summary>0.5·(R(relu(1 − real)) + R(relu(1 + fake))).</summary>
    public static Tensor HingeDiscriminatorLoss(Tensor logitsReal, Tensor logitsFake, GanLossReduction reduction = GanLossReduction.Mean)
    {
        using var scope = NewDisposeScope();
        var realTerm = Reduce(nn.functional.relu(1.0 - logitsReal), reduction);
        var fakeTerm = Reduce(nn.functional.relu(1.0 + logitsFake), reduction);
        return (0.5 * (realTerm + fakeTerm)).MoveToOuterDisposeScope();
    }

    /// <summary>0.5·(R(softplus(−real)) + R(softplus(fake))).</summary>
    public static Tensor VanillaDiscriminatorLoss(Tensor logitsReal, Tensor logitsFake, GanLossReduction reduction = GanLossReduction.Mean)
    {
        using var scope = NewDisposeScope();
        var realTerm = Reduce(nn.functional.softplus(-logitsReal), reduction);
        var fakeTerm = Reduce(nn.functional.softplus(logitsFake), reduction);
        return (0.5 * (realTerm + fakeTerm)).MoveToOuterDisposeScope();
    }

    /// <summary>The "vanilla" generator loss, −R(fake).</summary>
    public static Tensor VanillaGeneratorLoss(Tensor logitsFake, GanLossReduction reduction = GanLossReduction.Mean)
    {
        using var reduced = Reduce(logitsFake, reduction);
        return -reduced;
    }

    /// <summary>The discriminator loss named by <c>gan.loss.disc_loss</c>.</summary>
    public static Tensor DiscriminatorLoss(string name, Tensor logitsReal, Tensor logitsFake) => name switch
    {
        Hinge => HingeDiscriminatorLoss(logitsReal, logitsFake),
        Vanilla => VanillaDiscriminatorLoss(logitsReal, logitsFake),
        _ => throw new ArgumentException($"gan.loss.disc_loss '{name}' is unknown; expected '{Hinge}' or '{Vanilla}'", nameof(name)),
    };

    /// <summary>The generator loss named by <c>gan.loss.gen_loss</c> (the reference has only "vanilla").</summary>
    public static Tensor GeneratorLoss(string name, Tensor logitsFake) => name switch
    {
        Vanilla => VanillaGeneratorLoss(logitsFake),
        _ => throw new ArgumentException($"gan.loss.gen_loss '{name}' is unknown; expected '{Vanilla}'", nameof(name)),
    };

    /// <summary>mean(real &gt; fake) over all logits, as a float32 scalar.</summary>
    public static Tensor Accuracy(Tensor logitsReal, Tensor logitsFake)
    {
        using var scope = NewDisposeScope();
        return gt(logitsReal.detach(), logitsFake.detach()).to(float32).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The discriminator step's fake quantisation for images in [−1,1]: clamp, then round((x+1)·127.5)/127.5 − 1, op by op in
    /// float32 with round half to even (so 0 becomes float32(128/127.5) − 1 ≈ 0.003921628, not 0). Detached: the discriminator step needs no grad.
    /// </summary>
    public static Tensor QuantizeTo8BitLevels(Tensor imagesMinusOneToOne)
    {
        using var scope = NewDisposeScope();
        var level = QuantizationLevels(imagesMinusOneToOne);
        return (level / 127.5 - 1.0).MoveToOuterDisposeScope();
    }

    /// <summary>The integer level 0..255 (as floats) that <see cref="QuantizeTo8BitLevels"/> maps each value to.</summary>
    public static Tensor QuantizationLevels(Tensor imagesMinusOneToOne)
    {
        if (imagesMinusOneToOne.dtype != float32)
            throw new ArgumentException($"8-bit quantisation is defined on float32 images, got {imagesMinusOneToOne.dtype}");
        using var scope = NewDisposeScope();
        var clamped = imagesMinusOneToOne.detach().clamp(-1.0, 1.0);
        return ((clamped + 1.0) * 127.5).round().MoveToOuterDisposeScope();
    }

    private static Tensor Reduce(Tensor values, GanLossReduction reduction) => reduction switch
    {
        GanLossReduction.Mean => values.mean(),
        GanLossReduction.Sum => values.sum(),
        _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
    };
}
