using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>
/// A frozen perceptual distance between two image batches in [−1,1], as the Stage 1 generator step uses it: the
/// reference's LPIPS-VGG16 (<see cref="Lpips"/>) or the offline <see cref="ResNet18PerceptualLoss"/>. Implementations keep
/// every parameter frozen, behave the same whatever train/eval mode they are put in, and let gradients reach both inputs.
/// </summary>
public interface IPerceptualLoss : IDisposable
{
    /// <summary>The configuration name (<c>gan.loss.perceptual</c>): <c>lpips</c> or <c>resnet18</c>.</summary>
    string Name { get; }

    /// <summary>Per-sample distances [B,1,1,1] of two image batches [B,3,H,W] in [−1,1].</summary>
    Tensor PerSample(Tensor in0, Tensor in1);

    /// <summary>The batch mean of <see cref="PerSample"/>, the scalar the training step adds to the L1 loss.</summary>
    Tensor Loss(Tensor in0, Tensor in1);
}
