using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>torch.nn.utils.clip_grad_norm_ (L2, foreach path): scales every gradient by min(1, max_norm/(norm + 1e-6)).</summary>
public static class GradientClipping
{
    /// <summary>Clips in place and returns the total L2 norm of all gradients before clipping. Parameters without a gradient are skipped.</summary>
    public static double ClipGradNorm(IEnumerable<Parameter> parameters, double maxNorm)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        if (!(maxNorm > 0) || !double.IsFinite(maxNorm)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "max_norm must be a finite number > 0");
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var gradients = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (gradients.Count == 0) return 0.0;
        var norms = stack(gradients.Select(g => linalg.vector_norm(g, 2)).ToArray());
        var totalNorm = linalg.vector_norm(norms, 2);
        var coefficient = (maxNorm / (totalNorm + 1e-6)).clamp_max(1.0);
        foreach (var gradient in gradients) gradient.mul_(coefficient.to(gradient.dtype, gradient.device));
        return totalNorm.item<float>();
    }
}
