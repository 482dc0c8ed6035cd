using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>The transformers ACT2FN names the Stage-1 models use.</summary>
public static class Activations
{
    /// <summary>Validates a transformers activation name and returns the function it denotes.</summary>
    public static Func<Tensor, Tensor> Resolve(string hiddenAct, string source) => hiddenAct switch
    {
        "gelu" => x => nn.functional.gelu(x),
        "gelu_pytorch_tanh" or "gelu_new" or "gelu_fast" => x => nn.functional.gelu(x, GELU.Approximate.tanh),
        _ => throw new NotSupportedException($"{source}: hidden_act '{hiddenAct}' is not supported (gelu, gelu_pytorch_tanh, gelu_new)"),
    };
}
