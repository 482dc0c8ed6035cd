using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// Time embedding: e(t) = concat(sin(2π·t·W), cos(2π·t·W)) with fixed random frequencies W (a non-trainable parameter,
/// drawn N(0, scale²) at construction, stored as <c>W</c>), then <c>mlp.0</c> Linear → SiLU → <c>mlp.2</c> Linear.
/// </summary>
public sealed class GaussianFourierEmbedding : nn.Module<Tensor, Tensor>
{
    private readonly Parameter W;
    private readonly Sequential mlp;

    public GaussianFourierEmbedding(long hiddenSize, long embeddingSize = 256, double scale = 1.0, Generator? generator = null)
        : base(nameof(GaussianFourierEmbedding))
    {
        using (no_grad())
        {
            W = new Parameter(randn([embeddingSize], generator: generator) * scale, requires_grad: false);
        }
        mlp = nn.Sequential(
            ("0", nn.Linear(2 * embeddingSize, hiddenSize)),
            ("1", nn.SiLU()),
            ("2", nn.Linear(hiddenSize, hiddenSize)));
        RegisterComponents();
    }

    public Parameter Frequencies => W;

    public Linear FirstLinear => (Linear)mlp[0];

    public Linear SecondLinear => (Linear)mlp[2];

    public override Tensor forward(Tensor t)
    {
        using var scope = NewDisposeScope();
        var angles = t.unsqueeze(1) * W.unsqueeze(0) * 2 * Math.PI;
        var features = cat([angles.sin(), angles.cos()], -1);
        return mlp.forward(features).MoveToOuterDisposeScope();
    }
}
