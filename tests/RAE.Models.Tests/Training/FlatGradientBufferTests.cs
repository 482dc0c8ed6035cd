using RAE.Models.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Training;

public sealed class FlatGradientBufferTests
{
    /// <summary>Two linears, one extra parameter the loss never reaches; the same weights for every copy.</summary>
    private sealed class TwoLayers : nn.Module<Tensor, Tensor>
    {
        private readonly Linear _first, _second;
        private readonly Parameter _unused;

        public TwoLayers(long seed) : base(nameof(TwoLayers))
        {
            using var generator = new Generator((ulong)seed);
            _first = nn.Linear(5, 7);
            _second = nn.Linear(7, 3);
            _unused = new Parameter(zeros(4));
            RegisterComponents();
            using (no_grad())
            {
                foreach (var parameter in parameters())
                {
                    using var values = randn(parameter.shape, generator: generator);
                    parameter.copy_(values);
                }
            }
        }

        public override Tensor forward(Tensor input) => _second.call(_first.call(input).tanh());
    }

    private static Tensor Loss(nn.Module<Tensor, Tensor> model, Tensor input) => model.call(input).pow(2).sum();

    /// <summary>Where each parameter's gradient starts in the flat vector (parameter order), by parameter name.</summary>
    private static Dictionary<string, (long Offset, long Count)> Slices(nn.Module model)
    {
        var slices = new Dictionary<string, (long, long)>();
        long offset = 0;
        foreach (var (name, parameter) in model.named_parameters())
        {
            slices[name] = (offset, parameter.numel());
            offset += parameter.numel();
        }
        return slices;
    }

    [Fact]
    public void BackwardAccumulatesIntoTheVectorExactlyAsIntoSeparateGradients()
    {
        using var scope = NewDisposeScope();
        var inputs = new[] { randn(4, 5, generator: new Generator(1)), randn(6, 5, generator: new Generator(2)) };
        using var viaBuffer = new TwoLayers(3);
        using var reference = new TwoLayers(3);
        var parameters = viaBuffer.parameters().ToArray();
        using var buffer = new FlatGradientBuffer(parameters, CPU);
        Assert.Equal(5 * 7 + 7 + 7 * 3 + 3 + 4, buffer.Length);

        // Two steps of two micro-batches: the second Attach must start from zero again.
        for (var step = 0; step < 2; step++)
        {
            buffer.Attach();
            Assert.All(buffer.Host, value => Assert.Equal(0f, value));
            reference.zero_grad();
            foreach (var input in inputs)
            {
                Loss(viaBuffer, input * (step + 1)).backward();
                Loss(reference, input * (step + 1)).backward();
            }
            var expected = reference.parameters()
                .SelectMany(p => p.grad is { } gradient ? gradient.data<float>().ToArray() : new float[p.numel()]).ToArray();
            Assert.Equal(expected, buffer.Publish());
            Assert.Same(buffer.Host, buffer.Publish());
        }
        // The parameter the loss never reached keeps zeros in its slice, and every .grad is a view of the vector.
        var unused = Slices(viaBuffer)["_unused"];
        Assert.Equal(4, unused.Count);
        Assert.All(buffer.Host.AsSpan((int)unused.Offset, 4).ToArray(), value => Assert.Equal(0f, value));
        Assert.Contains(buffer.Host, value => value != 0f);
        var second = Slices(viaBuffer)["_second.weight"];
        buffer.Host[second.Offset + 1] = 42f;
        Assert.Equal(42f, viaBuffer.get_parameter("_second.weight")!.grad!.data<float>()[1]);
    }

    [Fact]
    public void LoadTakesItsOwnVectorInPlaceAndCopiesAnyOther()
    {
        using var scope = NewDisposeScope();
        using var model = new TwoLayers(5);
        var parameters = model.parameters().ToArray();
        using var buffer = new FlatGradientBuffer(parameters, CPU);
        buffer.Attach();
        Loss(model, randn(3, 5, generator: new Generator(6))).backward();

        // The all-reduce's mean written over the buffer's own array: no copy, and the parameters see it.
        var own = buffer.Publish();
        for (var i = 0; i < own.Length; i++) own[i] = i * 0.5f;
        foreach (var parameter in parameters) parameter.grad = null;
        buffer.Load(own);
        var slices = Slices(model);
        foreach (var (name, (offset, count)) in slices)
            Assert.Equal(own.AsSpan((int)offset, (int)count).ToArray(), model.get_parameter(name)!.grad!.data<float>().ToArray());

        var other = Enumerable.Range(0, buffer.Length).Select(i => -i * 0.25f).ToArray();
        buffer.Load(other);
        Assert.Equal(other, buffer.Host);
        Assert.NotSame(other, buffer.Host);
        foreach (var (name, (offset, count)) in slices)
            Assert.Equal(other.AsSpan((int)offset, (int)count).ToArray(), model.get_parameter(name)!.grad!.data<float>().ToArray());

        var error = Assert.Throws<ArgumentException>(() => buffer.Load(new float[buffer.Length - 1]));
        Assert.Contains($"{buffer.Length - 1:N0} gradients for {buffer.Length:N0} parameters", error.Message);
    }

    [Fact]
    public void AdamWOnBufferViewsStepsAsOnItsOwnGradients()
    {
        using var scope = NewDisposeScope();
        using var viaBuffer = new TwoLayers(9);
        using var reference = new TwoLayers(9);
        using var buffer = new FlatGradientBuffer(viaBuffer.parameters().ToArray(), CPU);
        using var bufferOptimizer = TrainingOptimizer.CreateAdamW(viaBuffer.parameters(), lr: 1e-2, weightDecay: 0.1);
        using var referenceOptimizer = TrainingOptimizer.CreateAdamW(reference.parameters(), lr: 1e-2, weightDecay: 0.1);
        for (var step = 0; step < 3; step++)
        {
            var input = randn(4, 5, generator: new Generator((ulong)(20 + step)));
            buffer.Attach();
            Loss(viaBuffer, input).backward();
            buffer.Load(buffer.Publish());
            bufferOptimizer.step();
            reference.zero_grad();
            Loss(reference, input).backward();
            referenceOptimizer.step();
        }
        foreach (var (name, mine) in viaBuffer.named_parameters())
        {
            if (name == "_unused") continue;
            Assert.Equal(reference.get_parameter(name)!.data<float>().ToArray(), mine.data<float>().ToArray());
        }
        // A parameter the loss never reaches gets a zero gradient, not none (as DDP's bucket views): AdamW still decays it,
        // where the single-process reference (no .grad) leaves it alone. The workers did the same before the buffer.
        var decayed = viaBuffer.get_parameter("_unused")!.data<float>().ToArray();
        var untouched = reference.get_parameter("_unused")!.data<float>().ToArray();
        for (var i = 0; i < 4; i++) Assert.Equal(untouched[i] * Math.Pow(1 - 1e-2 * 0.1, 3), decayed[i], 6);
    }

    [Fact]
    public void RefusesNonFloatParametersAndDropsItsViewsWhenDisposed()
    {
        using var scope = NewDisposeScope();
        var half = new Parameter(zeros(3, dtype: float64));
        var error = Assert.Throws<ArgumentException>(() => new FlatGradientBuffer([half], CPU));
        Assert.Contains("Float64", error.Message);

        var parameter = new Parameter(ones(3));
        var buffer = new FlatGradientBuffer([parameter], CPU);
        buffer.Attach();
        Assert.NotNull(parameter.grad);
        buffer.Dispose();
        Assert.Null(parameter.grad);
        Assert.Throws<ObjectDisposedException>(buffer.Attach);
    }
}
