using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>The adaptive GAN weight λ and the two last-layer gradients it was computed from (the caller disposes them).</summary>
public sealed record AdaptiveWeightResult(Tensor Weight, Tensor ReconstructionGradient, Tensor GanGradient) : IDisposable
{
    public void Dispose()
    {
        Weight.Dispose();
        ReconstructionGradient.Dispose();
        GanGradient.Dispose();
    }
}

/// <summary>
/// The reference's <c>calculate_adaptive_weight</c> (spec §4.4 step 6): λ = ‖∂L_recon/∂W‖ / (‖∂L_G/∂W‖ + 1e-6), clamped to
/// [0, max_d_weight] and detached, with W the decoder's last layer weight (<c>decoder_pred.weight</c>). Both gradients are
/// taken with the graph retained, so the total loss can still be back-propagated afterwards.
/// </summary>
public static class AdaptiveWeight
{
    public const double Epsilon = 1e-6;

    public static AdaptiveWeightResult Compute(Tensor reconstructionLoss, Tensor ganLoss, Tensor lastLayerWeight, double maxWeight)
    {
        if (!(maxWeight >= 0)) throw new ArgumentOutOfRangeException(nameof(maxWeight), maxWeight, "max_d_weight must be non-negative");
        if (!lastLayerWeight.requires_grad)
            throw new ArgumentException("the last layer weight does not require grad, so the adaptive weight has no gradient to measure", nameof(lastLayerWeight));
        var reconstructionGradient = autograd.grad([reconstructionLoss], [lastLayerWeight], retain_graph: true)[0];
        var ganGradient = autograd.grad([ganLoss], [lastLayerWeight], retain_graph: true)[0];
        using var scope = NewDisposeScope();
        var weight = (reconstructionGradient.norm() / (ganGradient.norm() + Epsilon)).clamp(0.0, maxWeight).detach();
        return new AdaptiveWeightResult(weight.MoveToOuterDisposeScope(), reconstructionGradient, ganGradient);
    }
}
