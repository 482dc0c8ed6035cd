using RAE.Configuration;
using RAE.Models.Stage2;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Sampling;

/// <summary>A class-conditional velocity model with the reference's guided forwards.</summary>
public interface IGuidedVelocityModel
{
    long NullClass { get; }

    Tensor Forward(Tensor x, Tensor t, Tensor y);

    Tensor ForwardWithCfg(Tensor x, Tensor t, Tensor y, double scale, (double Min, double Max) interval);

    Tensor ForwardWithAutoguidance(Tensor x, Tensor t, Tensor y, double scale, ConditionalModelFunction guide, (double Min, double Max) interval);
}

/// <summary>DiT^DH seen through <see cref="IGuidedVelocityModel"/>.</summary>
public sealed class DiTwDDTHeadGuidedModel(DiTwDDTHead model) : IGuidedVelocityModel
{
    public long NullClass => model.NullClass;

    public Tensor Forward(Tensor x, Tensor t, Tensor y) => model.forward(x, t, y);

    public Tensor ForwardWithCfg(Tensor x, Tensor t, Tensor y, double scale, (double Min, double Max) interval) =>
        model.ForwardWithCfg(x, t, y, scale, interval);

    public Tensor ForwardWithAutoguidance(Tensor x, Tensor t, Tensor y, double scale, ConditionalModelFunction guide, (double Min, double Max) interval) =>
        model.ForwardWithAutoguidance(x, t, y, scale, (gx, gt, gy) => guide(gx, gt, gy), interval);
}

/// <summary>The wiring of src/sample.py: doubled batch [z; z] with labels [y; null], and the choice of forward.</summary>
public static class GuidedSampling
{
    /// <summary>([z; z], [labels; null·n]) exactly as sample.py builds them (also without guidance).</summary>
    public static (Tensor Z, Tensor Y) DoubleBatch(Tensor z, Tensor labels, long nullClass)
    {
        if (labels.dim() != 1 || labels.shape[0] != z.shape[0])
            throw new ArgumentException($"labels must be [{z.shape[0]}] (one per latent), got [{string.Join(",", labels.shape)}]");
        using var scope = NewDisposeScope();
        var nulls = full_like(labels, nullClass);
        return (cat([z, z], 0).MoveToOuterDisposeScope(), cat([labels, nulls], 0).MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The model function handed to the sampler: plain forward when scale ≤ 1, forward_with_cfg for 'cfg', and
    /// forward_with_autoguidance with <paramref name="guide"/> for 'autoguidance', with cfg_interval = (t_min, t_max).
    /// </summary>
    public static ModelFunction CreateModelFunction(IGuidedVelocityModel model, Tensor y, GuidanceConfig settings, ConditionalModelFunction? guide = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(settings);
        if (!settings.IsActive) return (x, t) => model.Forward(x, t, y);
        if (!(settings.TMin < settings.TMax))
            throw new ArgumentException($"guidance needs t_min < t_max, got t_min {settings.TMin}, t_max {settings.TMax}");
        var interval = (settings.TMin, settings.TMax);
        return settings.Method switch
        {
            GuidanceMethod.Cfg => (x, t) => model.ForwardWithCfg(x, t, y, settings.Scale, interval),
            GuidanceMethod.Autoguidance => guide is null
                ? throw new ArgumentException("autoguidance needs the guidance model (guidance.guidance_model) but none was given")
                : (x, t) => model.ForwardWithAutoguidance(x, t, y, settings.Scale, guide, interval),
            _ => throw new ArgumentOutOfRangeException(nameof(settings), settings.Method, "unknown guidance method"),
        };
    }
}
