using RAE.Models.Stage1.Discriminator;
using RAE.Models.Stage1.Losses;

namespace RAE.Models.Training;

/// <summary>The argument checks shared by the single-process and the data-parallel Stage 1 step.</summary>
internal static class Stage1StepArguments
{
    public static void Check(Stage1LossSchedule losses, IPerceptualLoss? perceptual, Stage1Discriminator? discriminator,
        Stage1OptimizerSettings? discriminatorOptimizer, double emaDecay, double clipGrad)
    {
        if (losses.NeedsLpips && perceptual is null)
            throw new ArgumentException(
                $"gan.loss.perceptual_weight is {losses.Loss.PerceptualWeight} but no perceptual loss was given (gan.loss.perceptual: {losses.Loss.Perceptual})",
                nameof(perceptual));
        if (losses.NeedsDiscriminator && (discriminator is null || discriminatorOptimizer is null))
            throw new ArgumentException($"gan.loss.disc_weight is {losses.Loss.DiscWeight} but no discriminator (with its optimizer settings) was given", nameof(discriminator));
        if (!(emaDecay >= 0 && emaDecay <= 1)) throw new ArgumentOutOfRangeException(nameof(emaDecay), emaDecay, "ema_decay must lie in [0, 1]");
        if (!(clipGrad >= 0)) throw new ArgumentOutOfRangeException(nameof(clipGrad), clipGrad, "clip_grad must be >= 0 (0 disables clipping)");
    }
}
