using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using RAE.Models.Stage2;
using RAE.Models.Training;
using RAE.Models.Transport;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'transport' reference case: time sampling from recorded uniform draws, the Linear path, the training
/// loss of DiT^DH in eval and train mode (train mode = the recorded labels after dropout), and one training step
/// (gradients, pre-clip norm, clipped gradients, parameters after AdamW) from train_step.safetensors.
/// </summary>
public sealed class TransportCaseChecker : IReferenceCaseChecker
{
    public bool CanCheck(ReferenceCase referenceCase) =>
        referenceCase.Has("io.safetensors") && referenceCase.Root.TryGetProperty("time_sampling", out _)
        && (referenceCase.Model.Length == 0 || ReferenceTensorFile.NamesDiTwDDTHead(referenceCase));

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var scope = NewDisposeScope();
        var results = new List<OutputComparison>();
        CheckTimeSampling(referenceCase.Root, io, tolerance, results);
        if (io.Has("path.xt") || io.Has("path.ut"))
        {
            var (xt, ut) = new LinearPath().Plan(io["path.t"], io["path.x0"], io["path.x1"]);
            Compare(results, io, "path.xt", xt, tolerance);
            Compare(results, io, "path.ut", ut, tolerance);
        }
        if (!io.Has("loss.per_sample") && !referenceCase.Has("train_step.safetensors")) return results;
        if (!referenceCase.Has("weights.safetensors"))
            throw new InvalidDataException($"{referenceCase.Name}: loss outputs need weights.safetensors, which is missing");
        using var model = ReferenceTensorFile.LoadDiTwDDTHead(referenceCase.Root.GetProperty("params"), referenceCase.PathOf("weights.safetensors"));
        var transport = FlowTransport.Create("Linear", "velocity");
        CheckLosses(model, transport, io, tolerance, results);
        if (referenceCase.Has("train_step.safetensors"))
            CheckTrainStep(referenceCase, model, transport, io, tolerance, results);
        return results;
    }

    private static void Compare(List<OutputComparison> results, ReferenceTensorFile file, string name, Tensor actual, double tolerance)
    {
        if (file.Has(name)) results.Add(OutputComparison.Compare(name, actual, file[name], tolerance));
    }

    private static void CheckTimeSampling(JsonElement root, ReferenceTensorFile io, double tolerance, List<OutputComparison> results)
    {
        foreach (var setting in root.GetProperty("time_sampling").EnumerateObject())
        {
            var name = $"time.{setting.Name}.t";
            if (!io.Has(name)) continue;
            var config = setting.Value;
            var transport = FlowTransport.Create(
                "Linear", "velocity", trainEps: config.GetProperty("train_eps").GetDouble(),
                timeDistType: config.GetProperty("time_dist_type").GetString()!,
                timeDistShift: config.GetProperty("time_dist_shift").GetDouble());
            var (t0, t1) = transport.CheckInterval();
            var expected = config.GetProperty("t0_t1");
            if (Math.Abs(t0 - expected[0].GetDouble()) > 1e-12 || Math.Abs(t1 - expected[1].GetDouble()) > 1e-12)
                throw new InvalidDataException($"time sampling '{setting.Name}': our interval ({t0}, {t1}) differs from the reference's {expected.GetRawText()}");
            results.Add(OutputComparison.Compare(name, transport.SampleTime(io[$"time.{setting.Name}.u"]), io[name], tolerance));
        }
    }

    private static void CheckLosses(DiTwDDTHead model, FlowTransport transport, ReferenceTensorFile io, double tolerance, List<OutputComparison> results)
    {
        using var guard = no_grad();
        if (io.Has("loss.per_sample"))
        {
            using var loss = transport.TrainingLosses(Forward(model), io["loss.x1"], io["loss.y"], io["loss.x0"], io["loss.t"]);
            Compare(results, io, "loss.xt", loss.Xt, tolerance);
            Compare(results, io, "loss.ut", loss.Ut, tolerance);
            Compare(results, io, "loss.pred", loss.Prediction, tolerance);
            Compare(results, io, "loss.per_sample", loss.Loss, tolerance);
            Compare(results, io, "loss.mean", loss.Loss.mean().reshape(1), tolerance);
        }
        if (io.Has("loss_train.per_sample"))
        {
            // In train mode DiT^DH differs from eval mode only by label dropout, whose outcome is recorded.
            using var loss = transport.TrainingLosses(Forward(model), io["loss.x1"], io["loss_train.y_after_dropout"], io["loss_train.x0"], io["loss_train.t"]);
            Compare(results, io, "loss_train.per_sample", loss.Loss, tolerance);
            Compare(results, io, "loss_train.mean", loss.Loss.mean().reshape(1), tolerance);
        }
    }

    private static void CheckTrainStep(ReferenceCase referenceCase, DiTwDDTHead model, FlowTransport transport, ReferenceTensorFile io, double tolerance,
        List<OutputComparison> results)
    {
        using var step = new ReferenceTensorFile(referenceCase.PathOf("train_step.safetensors"));
        var call = referenceCase.Root.GetProperty("calls").GetProperty("train_step.safetensors").GetString()!;
        var maxNorm = ParseNumber(call, @"clip_grad_norm_\(params,\s*([0-9.eE+-]+)\)", "clip max_norm");
        var lr = ParseNumber(call, @"lr=([0-9.eE+-]+)", "AdamW lr");
        var beta1 = ParseNumber(call, @"betas=\(([0-9.eE+-]+),", "AdamW beta1");
        var beta2 = ParseNumber(call, @"betas=\([0-9.eE+-]+,\s*([0-9.eE+-]+)\)", "AdamW beta2");
        var weightDecay = ParseNumber(call, @"wd=([0-9.eE+-]+)", "AdamW weight decay");
        var eps = ParseNumber(call, @"eps=([0-9.eE+-]+)", "AdamW eps");

        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        var expectedNames = step.Tensors.Keys.Where(k => k.StartsWith("grad.", StringComparison.Ordinal)).Select(k => k["grad.".Length..]).ToHashSet();
        var ours = trainable.Select(p => p.name).ToHashSet();
        if (!ours.SetEquals(expectedNames))
            throw new InvalidDataException(
                $"{referenceCase.Name}: trainable parameters differ from the reference's gradients: only ours [{string.Join(", ", ours.Except(expectedNames))}], only reference [{string.Join(", ", expectedNames.Except(ours))}]");

        model.zero_grad();
        using (var loss = transport.TrainingLosses(Forward(model), io["loss.x1"], io["loss.y"], io["loss.x0"], io["loss.t"]))
        using (var mean = loss.Loss.mean())
            mean.backward();
        foreach (var (name, parameter) in trainable) Compare(results, step, $"grad.{name}", parameter.grad!, tolerance);

        var totalNorm = GradientClipping.ClipGradNorm(trainable.Select(p => p.parameter), maxNorm);
        Compare(results, step, "grad_total_norm", tensor(new[] { (float)totalNorm }), tolerance);
        foreach (var (name, parameter) in trainable) Compare(results, step, $"grad_clipped.{name}", parameter.grad!, tolerance);

        // AdamW's first step moves every weight by about lr·g/(|g| + eps), so gradients near zero amplify any difference in
        // them; the optimizer is therefore checked on the reference's clipped gradients (ours were compared above).
        using (no_grad())
            foreach (var (name, parameter) in trainable) parameter.grad!.copy_(step[$"grad_clipped.{name}"]);
        using var optimizer = TrainingOptimizer.CreateAdamW(trainable.Select(p => p.parameter), lr, beta1, beta2, weightDecay, eps);
        optimizer.step();
        foreach (var (name, parameter) in trainable) Compare(results, step, $"param_after.{name}", parameter, tolerance);
        model.zero_grad();
    }

    private static ConditionalModelFunction Forward(DiTwDDTHead model) => (x, t, y) => model.forward(x, t, y);

    private static double ParseNumber(string call, string pattern, string what)
    {
        var match = Regex.Match(call, pattern);
        if (!match.Success) throw new InvalidDataException($"train_step call '{call}' does not state the {what}");
        return double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
