using RAE.Configuration;
using RAE.Models.Stage1.Losses;

namespace RAE.Models.Training;

/// <summary>
/// The Stage 1 loss settings and the step-dependent flags of spec §4.4: <c>use_gan = g ≥ disc_start·steps_per_epoch and
/// disc_weight &gt; 0</c>, <c>train_disc = g ≥ disc_upd_start·steps_per_epoch and disc_weight &gt; 0</c>, <c>use_lpips = g ≥
/// lpips_start·steps_per_epoch and perceptual_weight &gt; 0</c>, with the epochs compared as the reference does (a real product).
/// </summary>
public sealed record Stage1LossSchedule
{
    public Stage1LossSchedule(GanLossConfig loss, long stepsPerEpoch)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (stepsPerEpoch <= 0) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, "steps_per_epoch must be > 0");
        // The names are checked here, so that a bad one fails before the first step rather than at disc_start.
        if (loss.DiscLoss is not (GanLosses.Hinge or GanLosses.Vanilla))
            throw new ArgumentException($"gan.loss.disc_loss '{loss.DiscLoss}' is unknown; expected '{GanLosses.Hinge}' or '{GanLosses.Vanilla}'", nameof(loss));
        if (loss.GenLoss != GanLosses.Vanilla)
            throw new ArgumentException($"gan.loss.gen_loss '{loss.GenLoss}' is unknown; expected '{GanLosses.Vanilla}'", nameof(loss));
        if (loss.DiscUpdates < 1) throw new ArgumentOutOfRangeException(nameof(loss), loss.DiscUpdates, "gan.loss.disc_updates must be >= 1");
        Loss = loss;
        StepsPerEpoch = stepsPerEpoch;
    }

    public GanLossConfig Loss { get; }

    public long StepsPerEpoch { get; }

    public bool UseGan(long globalStep) => globalStep >= Loss.DiscStart * StepsPerEpoch && Loss.DiscWeight > 0;

    public bool TrainDiscriminator(long globalStep) => globalStep >= Loss.DiscUpdStart * StepsPerEpoch && Loss.DiscWeight > 0;

    public bool UseLpips(long globalStep) => globalStep >= Loss.LpipsStart * StepsPerEpoch && Loss.PerceptualWeight > 0;

    /// <summary>True when some step will need the discriminator (and so a discriminator must be supplied).</summary>
    public bool NeedsDiscriminator => Loss.DiscWeight > 0;

    /// <summary>True when some step will need LPIPS.</summary>
    public bool NeedsLpips => Loss.PerceptualWeight > 0;
}
