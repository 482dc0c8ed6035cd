using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>
/// AdamW with torch's update rule, whose CPU fp32 step runs as one fused pass per parameter
/// (<see cref="AdamWKernel"/>) instead of TorchSharp's nine tensor passes and two full-size temporaries; on other devices
/// and dtypes it runs the same rule as in-place tensor ops. It keeps <see cref="AdamW.State"/>, so optimizer state is saved,
/// loaded and read exactly as for TorchSharp's AdamW. No amsgrad, no maximize (the trainer uses neither).
/// </summary>
public sealed class FusedAdamW : AdamW
{
    public FusedAdamW(IEnumerable<Parameter> parameters, double lr, double beta1, double beta2, double eps, double weightDecay)
        : base(parameters, lr, beta1, beta2, eps, weightDecay, amsgrad: false, maximize: false)
    {
    }

    /// <summary>How many parameters the last <see cref="step"/> updated with the fused CPU pass (the rest used tensor ops).</summary>
    public int LastFusedCount { get; private set; }

    public override Tensor step(Func<Tensor>? closure = null)
    {
        Tensor? loss = null;
        if (closure is not null)
        {
            using var grad = enable_grad();
            loss = closure();
        }
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var fused = 0;
        foreach (var group in ParamGroups.Cast<TorchSharp.Modules.ParamGroup>())
        {
            var options = (Options)group.Options;
            var settings = new AdamWStepSettings(options.LearningRate!.Value, options.beta1!.Value, options.beta2!.Value, options.eps!.Value,
                options.weight_decay!.Value);
            foreach (var parameter in group.Parameters)
            {
                var gradient = parameter.grad;
                if (gradient is null) continue;
                var state = (State)_state[parameter.Handle];
                state.step += 1;
                if (AdamWKernel.CanFuse(parameter, gradient, state.exp_avg, state.exp_avg_sq))
                {
                    AdamWKernel.Step(parameter, gradient, state.exp_avg, state.exp_avg_sq, settings, state.step);
                    fused++;
                }
                else
                {
                    TensorStep(parameter, gradient, state, settings);
                }
            }
        }
        LastFusedCount = fused;
        return loss!;
    }

    private static void TensorStep(Tensor parameter, Tensor gradient, State state, AdamWStepSettings settings)
    {
        using var scope = NewDisposeScope();
        if (settings.WeightDecay != 0) parameter.mul_(1 - settings.LearningRate * settings.WeightDecay);
        state.exp_avg.mul_(settings.Beta1).add_(gradient, alpha: 1 - settings.Beta1);
        state.exp_avg_sq.mul_(settings.Beta2).addcmul_(gradient, gradient, value: 1 - settings.Beta2);
        var (stepSize, biasCorrection2Sqrt) = settings.Corrections(state.step);
        var denominator = state.exp_avg_sq.sqrt().div_(biasCorrection2Sqrt).add_(settings.Eps);
        parameter.addcdiv_(state.exp_avg, denominator, value: -stepSize);
    }
}

/// <summary>One param group's AdamW hyper-parameters for a step.</summary>
public readonly record struct AdamWStepSettings(double LearningRate, double Beta1, double Beta2, double Eps, double WeightDecay)
{
    /// <summary>lr / (1 − β1^t) and √(1 − β2^t), as torch computes them in double.</summary>
    public (double StepSize, double BiasCorrection2Sqrt) Corrections(long step) =>
        (LearningRate / (1 - Math.Pow(Beta1, step)), Math.Sqrt(1 - Math.Pow(Beta2, step)));
}
