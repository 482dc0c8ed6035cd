using RAE.GrainInterfaces;
using RAE.Models.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Grains.Workers;

/// <summary>
/// A small MLP regression on seeded synthetic data: a stand-in replica that makes the whole distributed loop testable
/// now. Deterministic: parameters and data come from a generator seeded by the spec, and the global batch of step s is
/// samples [(s-1)·G, s·G) of the dataset, split into equal contiguous shards in rank order (and micro-batches within).
/// The optimizer is AdamW with linear warm-up and global-norm clipping, done on the flattened parameter vector.
/// Sizes and the extra delay per gradient computation come from <see cref="TrainingJobSpec.TinyMlp"/>.
/// </summary>
public sealed class TinyMlpWorker : IRankWorker
{
    public const string WorkloadName = TinyMlpOptions.WorkloadName;
    private const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;

    private RankWorkerContext? _context;
    private nn.Module<Tensor, Tensor>? _model;
    private Parameter[] _parameters = [];
    private Tensor? _inputs, _targets, _firstMoment, _secondMoment;
    private RAE.Models.Training.FlatGradientBuffer? _gradients;
    private Device _device = CPU;
    private long _updates;

    public int ParameterCount { get; private set; }

    public double LastGradientNorm { get; private set; }

    public void Initialize(RankWorkerContext context)
    {
        ReleaseTensors();
        _context = context;
        _device = torch.device(context.Device);
        // libtorch's intra-op pool is process-wide: every rank of a silo asks for the same ThreadsPerRank.
        if (context.Threads > 0 && torch.get_num_threads() != context.Threads) torch.set_num_threads(context.Threads);
        var options = context.Spec.TinyMlp;
        var problems = options.Problems().ToList();
        if (problems.Count > 0) throw new ArgumentException($"Workload '{WorkloadName}': {string.Join("; ", problems)}.");
        var features = options.InputFeatures;
        var hidden = options.Hidden;
        var datasetSize = options.DatasetSize;

        using var generator = new Generator((ulong)context.Spec.Seed, CPU);
        _model = nn.Sequential(("fc1", nn.Linear(features, hidden)), ("act", nn.Tanh()), ("fc2", nn.Linear(hidden, 1)));
        _model.to(_device);
        _parameters = _model.parameters().ToArray();
        using (no_grad())
        {
            foreach (var parameter in _parameters)
            {
                if (parameter.dim() == 1)
                {
                    parameter.zero_();
                    continue;
                }
                using var values = randn(parameter.shape, generator: generator).div_(Math.Sqrt(parameter.shape[1]));
                parameter.copy_(values);
            }
        }
        ParameterCount = (int)_parameters.Sum(p => p.numel());

        using (var scope = NewDisposeScope())
        {
            var inputs = randn([datasetSize, features], generator: generator);
            var teacher = randn([features, 1], generator: generator);
            var noise = randn([datasetSize, 1], generator: generator).mul_(0.1);
            var targets = inputs.matmul(teacher).div_(Math.Sqrt(features)).tanh_().add_(noise);
            _inputs = inputs.to(_device).MoveToOuterDisposeScope();
            _targets = targets.to(_device).MoveToOuterDisposeScope();
        }
        _gradients = new RAE.Models.Training.FlatGradientBuffer(_parameters, _device);
        _firstMoment = zeros([ParameterCount], device: _device);
        _secondMoment = zeros([ParameterCount], device: _device);
        _updates = 0;
    }

    public GradientResult ComputeGradients(long step, CancellationToken cancellationToken = default)
    {
        var context = RequireContext();
        var spec = context.Spec;
        var accumulation = spec.GradientAccumulation;
        var microBatch = spec.GlobalBatchSize / (context.WorldSize * accumulation);
        var datasetSize = _inputs!.shape[0];
        var gradients = _gradients ?? throw new InvalidOperationException("The tiny-mlp worker was used before Initialize.");
        gradients.Attach();
        double lossSum = 0;
        for (var micro = 0; micro < accumulation; micro++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var start = (step - 1) * spec.GlobalBatchSize + ((long)context.Rank * accumulation + micro) * microBatch;
            var indices = arange(start, start + microBatch, dtype: ScalarType.Int64).remainder_(datasetSize).to(_device);
            var prediction = _model!.call(_inputs.index_select(0, indices));
            var loss = nn.functional.mse_loss(prediction, _targets!.index_select(0, indices));
            loss.div(accumulation).backward();
            lossSum += loss.item<float>();
        }
        var delay = context.Spec.TinyMlp.StepDelay;
        if (delay > TimeSpan.Zero) cancellationToken.WaitHandle.WaitOne(delay);
        cancellationToken.ThrowIfCancellationRequested();
        StallOnceIfAsked(context, step);
        return new GradientResult(gradients.Publish(), lossSum / accumulation, microBatch * accumulation);
    }

    /// <summary>The stand-in for a hung worker (<see cref="TinyMlpOptions.StallRank"/>): once per process and job, so the
    /// group re-formed without it does not stall again on the rank that takes its place.</summary>
    private static void StallOnceIfAsked(RankWorkerContext context, long step)
    {
        var options = context.Spec.TinyMlp;
        if (options.StallRank != context.Rank || options.StallAtStep != step || options.StallFor <= TimeSpan.Zero) return;
        if (!Stalled.TryAdd(context.JobId ?? "", 0)) return;
        Thread.Sleep(options.StallFor);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> Stalled = new(StringComparer.Ordinal);

    public double ApplyUpdate(long step, float[] averagedGradients)
    {
        var spec = RequireContext().Spec;
        if (averagedGradients.Length != ParameterCount)
            throw new ArgumentException($"Update has {averagedGradients.Length} gradients; the model has {ParameterCount} parameters.", nameof(averagedGradients));
        var learningRate = spec.WarmupSteps > 0 ? spec.LearningRate * Math.Min(1.0, (double)step / spec.WarmupSteps) : spec.LearningRate;
        _updates++;
        using var scope = NewDisposeScope();
        var buffer = _gradients ?? throw new InvalidOperationException("The tiny-mlp worker was used before Initialize.");
        buffer.Load(averagedGradients);
        var gradients = buffer.Flat;
        var norm = gradients.norm().item<float>();
        LastGradientNorm = norm;
        if (spec.GradientClip > 0 && norm > spec.GradientClip) gradients.mul_(spec.GradientClip / (norm + 1e-6));
        // AdamW in place: p ← p·(1 − lr·wd) − lr·m̂ / (√v̂ + ε), parameter by parameter on slices of the flat moments, so no
        // flattened copy of the parameters is made and copied back (the update was ~11 ms of a 30 ms tiny-mlp step). On the
        // CPU one fused pass per parameter (AdamWKernel) reads and writes each value once instead of eight tensor passes.
        using var noGrad = no_grad();
        var settings = new AdamWStepSettings(learningRate, Beta1, Beta2, Epsilon, spec.WeightDecay);
        var slices = Slices(gradients);
        if (slices.All(s => AdamWKernel.CanFuse(s.Parameter, s.Gradient, s.FirstMoment, s.SecondMoment)))
        {
            foreach (var (parameter, gradient, firstMoment, secondMoment) in slices)
                AdamWKernel.Step(parameter, gradient, firstMoment, secondMoment, settings, _updates);
            return learningRate;
        }
        _firstMoment!.lerp_(gradients, 1 - Beta1);
        _secondMoment!.mul_(Beta2).addcmul_(gradients, gradients, 1 - Beta2);
        var (stepSize, biasCorrection2Sqrt) = settings.Corrections(_updates);
        var denominator = _secondMoment.sqrt().div_(biasCorrection2Sqrt).add_(Epsilon);
        long offset = 0;
        foreach (var parameter in _parameters)
        {
            var count = parameter.numel();
            var firstMoment = _firstMoment.narrow(0, offset, count).view(parameter.shape);
            var parameterDenominator = denominator.narrow(0, offset, count).view(parameter.shape);
            if (spec.WeightDecay > 0) parameter.mul_(1 - learningRate * spec.WeightDecay);
            parameter.addcdiv_(firstMoment, parameterDenominator, -stepSize);
            offset += count;
        }
        return learningRate;
    }

    /// <summary>Each parameter with its slices of the flat gradient and moments, shaped like it (views, disposed with the
    /// caller's scope).</summary>
    private List<(Tensor Parameter, Tensor Gradient, Tensor FirstMoment, Tensor SecondMoment)> Slices(Tensor gradients)
    {
        var slices = new List<(Tensor, Tensor, Tensor, Tensor)>(_parameters.Length);
        long offset = 0;
        foreach (var parameter in _parameters)
        {
            var count = parameter.numel();
            slices.Add((parameter, gradients.narrow(0, offset, count).view(parameter.shape), _firstMoment!.narrow(0, offset, count).view(parameter.shape),
                _secondMoment!.narrow(0, offset, count).view(parameter.shape)));
            offset += count;
        }
        return slices;
    }

    public float[] GetParameters()
    {
        RequireContext();
        using var flat = Flatten();
        using var host = flat.cpu();
        return host.data<float>().ToArray();
    }

    public void SetParameters(float[] parameters)
    {
        RequireContext();
        if (parameters.Length != ParameterCount)
            throw new ArgumentException($"Got {parameters.Length} parameters; the model has {ParameterCount}.", nameof(parameters));
        using var flat = tensor(parameters, device: _device);
        Unflatten(flat);
    }

    public void SaveState(Stream destination)
    {
        RequireContext();
        using (var writer = new BinaryWriter(destination, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(WorkloadName);
            writer.Write(ParameterCount);
            writer.Write(_updates);
            foreach (var vector in new[] { GetParameters(), ToArray(_firstMoment!), ToArray(_secondMoment!) })
                foreach (var value in vector) writer.Write(value);
        }
    }

    public void LoadState(Stream source)
    {
        RequireContext();
        using var reader = new BinaryReader(source, System.Text.Encoding.UTF8, leaveOpen: true);
        var workload = reader.ReadString();
        var count = reader.ReadInt32();
        if (workload != WorkloadName || count != ParameterCount)
            throw new InvalidDataException($"Checkpoint holds a '{workload}' state of {count} parameters; this worker is '{WorkloadName}' with {ParameterCount}.");
        var updates = reader.ReadInt64();
        var vectors = new float[3][];
        for (var v = 0; v < 3; v++)
        {
            vectors[v] = new float[count];
            for (var i = 0; i < count; i++) vectors[v][i] = reader.ReadSingle();
        }
        SetParameters(vectors[0]);
        using (var first = tensor(vectors[1], device: _device)) _firstMoment!.copy_(first);
        using (var second = tensor(vectors[2], device: _device)) _secondMoment!.copy_(second);
        _updates = updates;
    }

    public void Dispose() => ReleaseTensors();

    private Tensor Flatten()
    {
        using var scope = NewDisposeScope();
        return cat(_parameters.Select(p => p.detach().flatten()).ToArray()).MoveToOuterDisposeScope();
    }

    private void Unflatten(Tensor flat)
    {
        using var noGrad = no_grad();
        long offset = 0;
        foreach (var parameter in _parameters)
        {
            var count = parameter.numel();
            using var slice = flat.narrow(0, offset, count).view(parameter.shape);
            parameter.copy_(slice);
            offset += count;
        }
    }

    private static float[] ToArray(Tensor vector)
    {
        using var host = vector.cpu();
        return host.data<float>().ToArray();
    }

    private RankWorkerContext RequireContext() =>
        _context ?? throw new InvalidOperationException("The tiny MLP worker was used before Initialize.");

    private void ReleaseTensors()
    {
        _gradients?.Dispose();
        _gradients = null;
        _model?.Dispose();
        _inputs?.Dispose();
        _targets?.Dispose();
        _firstMoment?.Dispose();
        _secondMoment?.Dispose();
        _model = null;
        _inputs = _targets = _firstMoment = _secondMoment = null;
        _parameters = [];
    }
}

public sealed class TinyMlpWorkerFactory : IRankWorkerFactory
{
    public string Workload => TinyMlpWorker.WorkloadName;

    public IRankWorker Create() => new TinyMlpWorker();
}
