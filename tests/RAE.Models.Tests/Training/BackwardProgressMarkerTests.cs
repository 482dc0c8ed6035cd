using RAE.Configuration;
using RAE.Models.Nn;
using RAE.Models.Stage2;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Training;

/// <summary>
/// The block-boundary markers a data-parallel DiT^DH rank uses to all-reduce finished gradients while backward goes on:
/// every group must be complete when it is reported (else a rank would send a partial gradient), and the markers must
/// not change a single bit of the gradients.
/// </summary>
public sealed class BackwardProgressMarkerTests
{
    // Encoder and head of different widths, so s_projector is a Linear with its own group.
    private static readonly DiTwDDTHeadOptions Options = new()
    {
        InputSize = 4, InChannels = 8, HiddenSize = new(32, 48), Depth = new(3, 2), NumHeads = new(2, 2), NumClasses = 10,
    };

    /// <summary>The model with every weight moved off its initial value (adaLN and the output start at zero, which would
    /// make most gradients zero and the finality check vacuous).</summary>
    private static DiTwDDTHead NewModel()
    {
        using var generator = new Generator(7);
        var model = new DiTwDDTHead(Options, generator);
        // Training mode would drop labels with the global generator, which other tests move: two runs could differ by that.
        model.eval();
        using (no_grad())
        {
            foreach (var parameter in model.parameters().Where(p => p.requires_grad))
            {
                using var noise = randn(parameter.shape, generator: generator);
                parameter.add_(noise, alpha: 0.1);
            }
        }
        return model;
    }

    private static void Backward(DiTwDDTHead model, ComputePrecision precision = ComputePrecision.Float32)
    {
        using var scope = NewDisposeScope();
        using var autocast = Autocast.Enter(precision);
        using var generator = new Generator(11);
        var x = randn([3, 8, 4, 4], generator: generator);
        var t = rand([3], generator: generator);
        var y = tensor(new long[] { 1, 4, 10 });
        model.forward(x, t, y).pow(2).mean().backward();
    }

    private static bool Same(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
    }

    [Fact]
    public void TheGroupsHoldEveryTrainableParameterOnceInBackwardOrder()
    {
        using var model = NewModel();
        var groups = model.GradientGroupsInBackwardOrder();
        var trainable = model.parameters().Where(p => p.requires_grad).ToList();
        var grouped = groups.SelectMany(group => group).ToList();
        Assert.Equal(trainable.Count, grouped.Count);
        Assert.Equal(trainable.Count, grouped.Distinct(ReferenceEqualityComparer.Instance).Count());
        Assert.All(trainable, p => Assert.Contains(p, grouped));
        // final layer, 2 head blocks, s_projector, 3 encoder blocks, the rest
        Assert.Equal(1 + 2 + 1 + 3 + 1, groups.Count);
        Assert.All(groups.Take(groups.Count - 1), group => Assert.NotEmpty(group));
    }

    [Fact]
    public void EveryReportedGroupIsFinalWhenReportedAndTheReportsComeInOrder()
    {
        using var model = NewModel();
        var groups = model.GradientGroupsInBackwardOrder();
        var reported = new List<int>();
        var snapshots = new Dictionary<int, Tensor[]>();
        var missing = new List<string>();
        model.GradientGroupFinished = group =>
        {
            reported.Add(group);
            // A gradient not even created yet is the clearest sign of a premature report; never throw inside the engine.
            if (groups[group].Any(p => p.grad is null)) missing.Add($"group {group} reported before all its gradients existed");
            else snapshots[group] = groups[group].Select(p => p.grad!.detach().clone().DetachFromDisposeScope()).ToArray();
        };
        Backward(model);
        Assert.Empty(missing);
        Assert.Equal(Enumerable.Range(0, groups.Count - 1), reported);
        foreach (var (group, taken) in snapshots)
        {
            for (var i = 0; i < taken.Length; i++)
            {
                Assert.True(Same(taken[i], groups[group][i].grad!), $"group {group} parameter {i} changed after its group was reported");
                Assert.True(taken[i].abs().sum().item<float>() > 0, $"group {group} parameter {i} has an all-zero gradient: the check is vacuous");
                taken[i].Dispose();
            }
        }
    }

    [Theory]
    [InlineData(ComputePrecision.Float32)]
    [InlineData(ComputePrecision.BFloat16)]
    public void MarkersLeaveEveryGradientBitIdentical(ComputePrecision precision)
    {
        using var plain = NewModel();
        using var marked = NewModel();
        var calls = 0;
        marked.GradientGroupFinished = _ => calls++;
        Backward(plain, precision);
        Backward(marked, precision);
        Assert.True(calls > 0);
        var expected = plain.named_parameters().ToList();
        var actual = marked.named_parameters().ToList();
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].name, actual[i].name);
            if (!expected[i].parameter.requires_grad) continue;
            Assert.True(Same(expected[i].parameter.grad!, actual[i].parameter.grad!), $"{expected[i].name}: the gradient differs with markers");
        }
    }

    [Fact]
    public void NoMarkerRunsWithoutGradients()
    {
        using var model = NewModel();
        var calls = 0;
        model.GradientGroupFinished = _ => calls++;
        using (no_grad())
        {
            using var scope = NewDisposeScope();
            using var generator = new Generator(3);
            model.forward(randn([2, 8, 4, 4], generator: generator), rand([2], generator: generator), tensor(new long[] { 0, 1 }));
        }
        Assert.Equal(0, calls);
        using var input = ones(3);
        Assert.Same(input, RAE.Models.Training.BackwardProgressMarker.Mark(input, () => calls++));
    }
}
