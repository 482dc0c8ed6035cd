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
        var gradients = Gradients(parameters);
        if (gradients.Count == 0) return 0.0;
        var totalNorm = TotalNorm(gradients);
        ScaleToMaxNorm(gradients, totalNorm, maxNorm);
        return totalNorm.item<float>();
    }

    /// <summary>The gradients of <paramref name="parameters"/> that exist.</summary>
    public static List<Tensor> Gradients(IEnumerable<Parameter> parameters) =>
        parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();

    /// <summary>The total L2 norm as clip_grad_norm_ computes it: the norm of the per-gradient norms (a 0-d tensor).</summary>
    public static Tensor TotalNorm(IReadOnlyList<Tensor> gradients)
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        return linalg.vector_norm(stack(gradients.Select(g => linalg.vector_norm(g, 2)).ToArray()), 2).MoveToOuterDisposeScope();
    }

    /// <summary>The clipping half of <see cref="ClipGradNorm"/> with the total norm already measured (one pass over the gradients fewer).</summary>
    public static void ScaleToMaxNorm(IReadOnlyList<Tensor> gradients, Tensor totalNorm, double maxNorm)
    {
        if (!(maxNorm > 0) || !double.IsFinite(maxNorm)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "max_norm must be a finite number > 0");
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var coefficient = (maxNorm / (totalNorm + 1e-6)).clamp_max(1.0);
        foreach (var gradient in gradients) gradient.mul_(coefficient.to(gradient.dtype, gradient.device));
    }
}
