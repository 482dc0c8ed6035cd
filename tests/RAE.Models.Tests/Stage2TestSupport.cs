using RAE.Models.IO;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

internal static class Stage2TestSupport
{
    /// <summary>
    /// Redraws every trainable tensor densely (like the fixtures' "oracle-dense" scheme) so that no zero-initialised adaLN
    /// or output layer hides a broken gradient path.
    /// </summary>
    public static void DenseInit(nn.Module module, long seed)
    {
        using var guard = no_grad();
        var generator = new Generator((ulong)seed, device("cpu"));
        foreach (var (name, parameter) in module.named_parameters())
        {
            if (!parameter.requires_grad) continue;
            if (parameter.dim() >= 2)
            {
                var fanIn = parameter.numel() / parameter.shape[0];
                parameter.copy_(randn(parameter.shape, generator: generator) / Math.Sqrt(fanIn));
            }
            else if (name.Contains("norm", StringComparison.Ordinal) && name.EndsWith(".weight", StringComparison.Ordinal))
            {
                parameter.copy_(1 + 0.1 * randn(parameter.shape, generator: generator));
            }
            else
            {
                parameter.copy_(0.1 * randn(parameter.shape, generator: generator));
            }
        }
    }

    public static Dictionary<string, Tensor> LoadCase(string caseName, string file) =>
        SafeTensors.Load(Path.Combine(Fixtures.Case(caseName), file));

    public static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    public static double MaxAbsDifference(Tensor a, Tensor b) => (a - b).abs().max().item<float>();
}
