using System.Text.Json;
using GuidanceConfig = RAE.Configuration.GuidanceConfig;
using GuidanceMethod = RAE.Configuration.GuidanceMethod;
using RAE.Models.Sampling;
using RAE.Models.Stage2;
using RAE.Models.Transport;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'sampler' reference case: the shifted time grid and, per run, end-to-end ODE sampling with DiT^DH
/// (plain forward, CFG or autoguidance, wired like sample.py on the doubled batch [z; z] / [y; null]):
/// trajectory, final state, samples (first half) and the time of every model call.
/// </summary>
public sealed class SamplerCaseChecker : IReferenceCaseChecker
{
    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Has("io.safetensors") && referenceCase.Has("weights.safetensors")
        && referenceCase.Root.TryGetProperty("runs", out var runs) && runs.ValueKind == JsonValueKind.Object
        && ReferenceTensorFile.NamesDiTwDDTHead(referenceCase);

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        var root = referenceCase.Root;
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        using var model = ReferenceTensorFile.LoadDiTwDDTHead(root.GetProperty("params"), referenceCase.PathOf("weights.safetensors"));
        using var guide = root.TryGetProperty("guidance_model", out var guidanceCase)
            ? ReferenceTensorFile.LoadDiTwDDTHead(guidanceCase.GetProperty("params"), referenceCase.PathOf(guidanceCase.GetProperty("weights").GetString()!))
            : null;

        var transport = CreateTransport(root.GetProperty("transport"), referenceCase.Name);
        var (z, y) = BuildBatch(root, io, model, referenceCase.Name);
        var results = new List<OutputComparison>();
        var runs = root.GetProperty("runs").EnumerateObject().ToList();
        if (io.Has("time_grid") && runs.Count > 0)
        {
            var first = CreateSampler(transport, runs[0].Value.GetProperty("sampler"), runs[0].Name);
            results.Add(OutputComparison.Compare("time_grid", tensor(first.Times.Select(t => (float)t).ToArray()), io["time_grid"], tolerance));
        }
        foreach (var run in runs)
        {
            if (!io.Has($"{run.Name}.trajectory") && !io.Has($"{run.Name}.final")) continue;
            var sampler = CreateSampler(transport, run.Value.GetProperty("sampler"), run.Name);
            var settings = ReadGuidance(run.Value.GetProperty("guidance"));
            CheckForwardName(run, settings);
            var modelFunction = GuidedSampling.CreateModelFunction(
                new DiTwDDTHeadGuidedModel(model), y, settings, guide is null ? null : (x, t, labels) => guide.forward(x, t, labels));
            var callTimes = new List<float>();
            var trajectory = sampler.Sample(z, (x, t) =>
            {
                callTimes.Add(t[0].item<float>());
                return modelFunction(x, t);
            });
            var final = trajectory[-1];
            Compare(results, io, $"{run.Name}.trajectory", trajectory, tolerance);
            Compare(results, io, $"{run.Name}.final", final, tolerance);
            Compare(results, io, $"{run.Name}.samples", final.chunk(2, 0)[0], tolerance);
            Compare(results, io, $"{run.Name}.call_t", tensor(callTimes.ToArray()), tolerance);
        }
        return results;
    }

    private static void Compare(List<OutputComparison> results, ReferenceTensorFile file, string name, Tensor actual, double tolerance)
    {
        if (file.Has(name)) results.Add(OutputComparison.Compare(name, actual, file[name], tolerance));
    }

    private static FlowTransport CreateTransport(JsonElement config, string caseName)
    {
        var shift = config.TryGetProperty("time_dist_shift_dim", out var dim)
            ? TimeDistribution.ShiftFromDimensions(dim.GetDouble(), config.GetProperty("time_dist_shift_base").GetDouble())
            : config.GetProperty("time_dist_shift").GetDouble();
        if (config.TryGetProperty("time_dist_shift", out var stated) && Math.Abs(stated.GetDouble() - shift) > 1e-9 * shift)
            throw new InvalidDataException($"{caseName}: time_dist_shift {stated.GetDouble()} differs from sqrt(dim/base) = {shift}");
        return FlowTransport.Create(
            config.GetProperty("path_type").GetString()!, config.GetProperty("prediction").GetString()!,
            timeDistType: config.TryGetProperty("time_dist_type", out var type) ? type.GetString()! : "uniform",
            timeDistShift: shift);
    }

    /// <summary>Rebuilds [z; z] and [labels; null] from the first half of z and class_labels, and checks them against the recorded batch.</summary>
    private static (Tensor Z, Tensor Y) BuildBatch(JsonElement root, ReferenceTensorFile io, DiTwDDTHead model, string caseName)
    {
        var recordedZ = io["z"];
        var recordedY = io["y"];
        if (!root.TryGetProperty("class_labels", out var labelsJson)) return (recordedZ, recordedY);
        var labels = tensor(labelsJson.EnumerateArray().Select(e => e.GetInt64()).ToArray());
        var nullClass = root.TryGetProperty("null_class", out var nullJson) ? nullJson.GetInt64() : model.NullClass;
        var (z, y) = GuidedSampling.DoubleBatch(recordedZ.slice(0, 0, labels.shape[0], 1), labels, nullClass);
        if (!SameTensor(z, recordedZ) || !SameTensor(y, recordedY))
            throw new InvalidDataException($"{caseName}: the recorded batch (z, y) is not [z; z] with labels [class_labels; null_class]");
        return (z, y);
    }

    private static bool SameTensor(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    private static OdeSampler CreateSampler(FlowTransport transport, JsonElement sampler, string runName)
    {
        var mode = sampler.GetProperty("mode").GetString();
        if (mode != "ODE") throw new NotSupportedException($"run '{runName}': sampler mode '{mode}' has no reference outputs we can reproduce (only ODE)");
        var parameters = sampler.GetProperty("params");
        return new OdeSampler(
            transport,
            parameters.GetProperty("sampling_method").GetString()!,
            parameters.GetProperty("num_steps").GetInt32(),
            parameters.TryGetProperty("atol", out var atol) ? atol.GetDouble() : 1e-6,
            parameters.TryGetProperty("rtol", out var rtol) ? rtol.GetDouble() : 1e-3,
            parameters.TryGetProperty("reverse", out var reverse) && reverse.GetBoolean());
    }

    private static GuidanceConfig ReadGuidance(JsonElement guidance)
    {
        var scale = guidance.GetProperty("scale").GetDouble();
        var method = guidance.TryGetProperty("method", out var name) ? GuidanceConfig.ParseMethod(name.GetString()!) : GuidanceMethod.Cfg;
        var tMin = guidance.TryGetProperty("t_min", out var min) ? min.GetDouble() : 0.0;
        var tMax = guidance.TryGetProperty("t_max", out var max) ? max.GetDouble() : 1.0;
        return new GuidanceConfig { Method = method, Scale = scale, TMin = tMin, TMax = tMax };
    }

    private static void CheckForwardName(JsonProperty run, GuidanceConfig settings)
    {
        if (!run.Value.TryGetProperty("model_forward", out var forward)) return;
        var expected = !settings.IsActive ? "forward" : settings.Method == GuidanceMethod.Cfg ? "forward_with_cfg" : "forward_with_autoguidance";
        if (forward.GetString() != expected)
            throw new InvalidDataException($"run '{run.Name}': the reference called {forward.GetString()}, our wiring would call {expected}");
    }
}
