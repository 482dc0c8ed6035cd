using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// A Stage 1 discriminator as the training step uses it: images in [-1,1] to per-position logits [B, N]. Only the head
/// parameters train; a frozen backbone stays outside <see cref="TrainableParameters"/> and the state dict.
/// </summary>
public interface IDiscriminator : IDisposable
{
    /// <summary>The logits of one batch; gradients flow to the images (generator step) and to the heads.</summary>
    Tensor Classify(Tensor images);

    /// <summary>(logits_fake, logits_real): classify(fake) first, then classify(real) when given, as the reference's forward.</summary>
    (Tensor Fake, Tensor? Real) Forward(Tensor fake, Tensor? real = null);

    IReadOnlyList<Parameter> TrainableParameters();

    /// <summary>The trainable module (its state dict is the discriminator checkpoint).</summary>
    nn.Module Module { get; }

    /// <summary>Train mode advances the spectral-norm power iteration on each classify; eval mode uses the stored u, v.</summary>
    void SetTraining(bool training);
}
