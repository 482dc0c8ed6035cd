using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// Ownership of the gradients a custom autograd function (TorchSharp's <c>autograd.SingleTensorFunction</c>) returns
/// from its backward. LibTorchSharp copies each returned <c>at::Tensor</c> only after the managed callback has returned,
/// so the managed wrappers cannot be disposed inside it; left alone they would hold their storage until the garbage
/// collector finalises them (activation-sized buffers per layer). Each backward call on a thread first releases the
/// wrappers the previous call on that thread returned: by then libtorch holds its own references. The autograd engine
/// runs a CPU graph's backward on the thread that called <c>backward()</c>, and a thread cannot be inside two callbacks
/// at once, so per-thread release never frees a wrapper whose copy is still pending.
/// </summary>
public static class CustomGradients
{
    [ThreadStatic] private static List<Tensor>? returned;

    /// <summary>Releases what the previous backward on this thread returned; call first in every custom backward.</summary>
    public static void ReleasePrevious()
    {
        if (returned is null) return;
        foreach (var tensor in returned) tensor.Dispose();
        returned.Clear();
    }

    /// <summary>Takes <paramref name="gradients"/> out of every dispose scope and releases them at the next backward on this thread.</summary>
    public static List<Tensor> Return(params Tensor?[] gradients)
    {
        returned ??= [];
        var list = new List<Tensor>(gradients.Length);
        foreach (var gradient in gradients)
        {
            if (gradient is null)
            {
                list.Add(null!);
                continue;
            }
            returned.Add(gradient.DetachFromDisposeScope());
            list.Add(gradient);
        }
        return list;
    }
}
