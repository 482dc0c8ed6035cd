using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>The Stage-2 optimizer: AdamW (torch's update rule, fused on CPU: <see cref="FusedAdamW"/>) over the parameters that require gradients.</summary>
public static class TrainingOptimizer
{
    public static AdamW CreateAdamW(IEnumerable<Parameter> parameters, double lr = 2e-4, double beta1 = 0.9, double beta2 = 0.95, double weightDecay = 0.0, double eps = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(lr > 0)) throw new ArgumentOutOfRangeException(nameof(lr), lr, "lr must be > 0");
        if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1)) throw new ArgumentException($"betas must lie in [0, 1), got ({beta1}, {beta2})");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), weightDecay, "weight decay must be >= 0");
        if (!(eps > 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be > 0");
        var trainable = parameters.Where(p => p.requires_grad).ToList();
        if (trainable.Count == 0) throw new ArgumentException("AdamW got no parameters that require gradients");
        return new FusedAdamW(trainable, lr, beta1, beta2, eps, weightDecay);
    }
}
