using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>
/// An identity in the forward pass whose backward first reports that it was reached, then passes the gradient on
/// unchanged. Placed on a block's input, it reports once the gradient with respect to that input is complete, which is
/// after the backward of the whole block: the autograd engine runs a node only when every consumer of its output has
/// sent its gradient, and among ready nodes it runs the later-recorded ones (and every parameter's gradient
/// accumulation) first, so the block's parameter gradients are final by then. A data-parallel rank uses this to start
/// the all-reduce of finished gradients while the backward of earlier blocks still runs (PyTorch DDP's bucketed overlap;
/// TorchSharp 0.107 has no tensor or post-accumulate-grad hooks).
/// </summary>
public static class BackwardProgressMarker
{
    /// <summary><paramref name="input"/> itself when no gradient will flow through it (inference, frozen inputs); otherwise
    /// a marked alias whose backward calls <paramref name="reached"/> on the thread that runs backward.
    /// <paramref name="reached"/> must not throw: it runs inside libtorch's engine.</summary>
    public static Tensor Mark(Tensor input, Action reached)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(reached);
        return input.requires_grad && is_grad_enabled() ? MarkerFunction.apply(input, reached) : input;
    }

    private sealed class MarkerFunction : autograd.SingleTensorFunction<MarkerFunction>
    {
        private const string ReachedKey = "reached";

        public override string Name => nameof(BackwardProgressMarker);

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data(ReachedKey, vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad_output)
        {
            Nn.CustomGradients.ReleasePrevious();
            ((Action)ctx.get_data(ReachedKey)).Invoke();
            var passed = grad_output.alias();
            grad_output.Dispose();
            return Nn.CustomGradients.Return(passed, null); // one per argument of apply: the callback has none
        }
    }
}
