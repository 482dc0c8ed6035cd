using System.Globalization;
using System.Text;
using RAE.Models.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage2;

/// <summary>
/// The exact-resume state of a DiT^DH rank as safetensors bytes. Keys: <c>model.&lt;reference key&gt;</c> and
/// <c>ema.&lt;reference key&gt;</c> (the state_dict keys of the reference DiTwDDTHead, so an export can strip the prefix),
/// <c>optimizer.exp_avg.&lt;key&gt;</c>, <c>optimizer.exp_avg_sq.&lt;key&gt;</c>, <c>optimizer.step</c> (AdamW),
/// <c>trainer.step</c>, <c>trainer.seed</c>, <c>trainer.global_batch</c>, <c>data.seed</c>, <c>data.position</c> (global
/// samples consumed), the data position of the next step (<c>data.epoch</c>, <c>data.offset</c> in batches,
/// <c>data.permutation_seed</c>) with <c>data.dataset_size</c>, <c>config.yaml</c> (UTF-8 bytes of the canonical configuration, also in the metadata). The data
/// order, noise, times and dropout are functions of (seed, step, slot), so step and seeds are the whole RNG state, and the
/// LR schedule position is the step.
/// </summary>
internal static class DiTTrainingState
{
    public const string Format = "rae-dit-dh-trainer-v1";

    public static void Save(DiTRankWorker worker, Stream destination)
    {
        var job = worker.Job;
        var spec = job.Config;
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, value) in worker.Model.state_dict()) tensors.Add(new($"model.{name}", value));
        foreach (var (name, value) in worker.Ema.state_dict()) tensors.Add(new($"ema.{name}", value));
        var names = TrainableNames(worker);
        var states = AdamStates(worker);
        long optimizerStep = 0;
        for (var i = 0; i < names.Count; i++)
        {
            tensors.Add(new($"optimizer.exp_avg.{names[i]}", states[i].exp_avg));
            tensors.Add(new($"optimizer.exp_avg_sq.{names[i]}", states[i].exp_avg_sq));
            optimizerStep = states[i].step;
        }
        var context = Context(worker);
        var yaml = spec.ToYaml();
        tensors.Add(new("optimizer.step", tensor(optimizerStep)));
        tensors.Add(new("trainer.step", tensor(worker.Step)));
        tensors.Add(new("trainer.seed", tensor(context.Spec.Seed)));
        tensors.Add(new("trainer.global_batch", tensor((long)context.Spec.GlobalBatchSize)));
        tensors.Add(new("data.seed", tensor(job.Data.Seed)));
        tensors.Add(new("data.position", tensor(worker.Step * context.Spec.GlobalBatchSize)));
        var next = worker.DataPositionOf(worker.Step + 1);
        tensors.Add(new("data.epoch", tensor(next.Epoch)));
        tensors.Add(new("data.offset", tensor(next.Offset)));
        tensors.Add(new("data.permutation_seed", tensor(next.PermutationSeed)));
        tensors.Add(new("data.dataset_size", tensor(worker.DatasetSize)));
        tensors.Add(new("config.yaml", tensor(Encoding.UTF8.GetBytes(yaml))));
        var metadata = new Dictionary<string, string>
        {
            ["format"] = Format,
            ["step"] = worker.Step.ToString(CultureInfo.InvariantCulture),
            ["config"] = yaml,
        };
        SafeTensors.Save(destination, tensors, metadata);
    }

    private static readonly string[] WeightGroups = ["model.", "ema.", "optimizer.exp_avg.", "optimizer.exp_avg_sq."];

    /// <summary>
    /// Restores from a seekable stream one group of tensors at a time (the scalars, then model, EMA and each AdamW moment),
    /// so the extra memory is one copy of the weights, not of the whole state. The seed and batch are checked first.
    /// </summary>
    /// <returns>The step the state was taken at.</returns>
    public static long Load(DiTRankWorker worker, Stream state)
    {
        var context = Context(worker);
        var start = state.Position;
        long step = 0, optimizerStep = 0;
        WithGroup(state, start, key => !WeightGroups.Any(group => key.StartsWith(group, StringComparison.Ordinal)), tensors =>
        {
            step = Scalar(tensors, "trainer.step");
            var seed = Scalar(tensors, "trainer.seed");
            var globalBatch = Scalar(tensors, "trainer.global_batch");
            if (seed != context.Spec.Seed || globalBatch != context.Spec.GlobalBatchSize)
                throw new InvalidDataException($"The checkpoint was taken with seed {seed} and global batch {globalBatch}; this job has seed {context.Spec.Seed} and global batch {context.Spec.GlobalBatchSize}.");
            optimizerStep = Scalar(tensors, "optimizer.step");
            if (worker.Latents is not null) CheckDataPosition(worker, tensors, step);
        });
        using var guard = no_grad();
        WithGroup(state, start, "model.", tensors => CopyInto(worker.Model.state_dict(), tensors, "model."));
        WithGroup(state, start, "ema.", tensors => CopyInto(worker.Ema.state_dict(), tensors, "ema."));
        var names = TrainableNames(worker);
        var states = AdamStates(worker);
        WithGroup(state, start, "optimizer.exp_avg.", tensors =>
        {
            for (var i = 0; i < names.Count; i++) CopyTensor(states[i].exp_avg, tensors, $"optimizer.exp_avg.{names[i]}");
        });
        WithGroup(state, start, "optimizer.exp_avg_sq.", tensors =>
        {
            for (var i = 0; i < names.Count; i++) CopyTensor(states[i].exp_avg_sq, tensors, $"optimizer.exp_avg_sq.{names[i]}");
        });
        foreach (var adam in states) adam.step = optimizerStep;
        return step;
    }

    /// <summary>
    /// A latent job resumes on the very batches it would have read: the dataset must have the size it had, and the
    /// stored position of the next step (epoch, offset, permutation seed) must be the one this job's plan gives.
    /// </summary>
    private static void CheckDataPosition(DiTRankWorker worker, Dictionary<string, Tensor> tensors, long step)
    {
        var size = Scalar(tensors, "data.dataset_size");
        if (size != worker.DatasetSize)
            throw new InvalidDataException($"The checkpoint was taken on a dataset of {size} latents; latent dataset '{worker.Job.Data.Dataset}' now holds {worker.DatasetSize}, so the resumed job would read other batches.");
        var stored = new RAE.Models.Data.DataPosition(Scalar(tensors, "data.epoch"), Scalar(tensors, "data.offset"), Scalar(tensors, "data.permutation_seed"));
        var expected = worker.DataPositionOf(step + 1);
        if (stored != expected)
            throw new InvalidDataException($"The checkpoint's data position {stored} differs from the one this job gives step {step + 1}: {expected} (data.seed or global batch changed).");
    }

    private static void WithGroup(Stream state, long start, string prefix, Action<Dictionary<string, Tensor>> use) =>
        WithGroup(state, start, key => key.StartsWith(prefix, StringComparison.Ordinal), use);

    private static void WithGroup(Stream state, long start, Func<string, bool> include, Action<Dictionary<string, Tensor>> use)
    {
        state.Position = start;
        var tensors = SafeTensors.Load(state, "DiT^DH training state", include);
        try
        {
            use(tensors);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    private static RankWorkerContext Context(DiTRankWorker worker) =>
        worker.Context ?? throw new InvalidOperationException("The DiT^DH worker was used before Initialize.");

    private static List<string> TrainableNames(DiTRankWorker worker)
    {
        var trainable = worker.TrainableParameters.Select(p => p.Handle).ToHashSet();
        return worker.Model.named_parameters().Where(p => trainable.Contains(p.parameter.Handle)).Select(p => p.name).ToList();
    }

    private static List<AdamW.State> AdamStates(DiTRankWorker worker)
    {
        var states = worker.Optimizer.state_dict().State.Cast<AdamW.State>().ToList();
        if (states.Count != worker.TrainableParameters.Count)
            throw new InvalidOperationException($"AdamW holds {states.Count} parameter states for {worker.TrainableParameters.Count} trainable parameters.");
        return states;
    }

    private static void CopyInto(IDictionary<string, Tensor> target, Dictionary<string, Tensor> source, string prefix)
    {
        foreach (var (name, value) in target) CopyTensor(value, source, prefix + name);
    }

    private static void CopyTensor(Tensor target, Dictionary<string, Tensor> source, string key)
    {
        if (!source.TryGetValue(key, out var value))
            throw new InvalidDataException($"The DiT^DH training state has no '{key}' (is it a checkpoint of another model or workload?).");
        if (!value.shape.SequenceEqual(target.shape))
            throw new InvalidDataException($"'{key}' has shape [{string.Join(", ", value.shape)}] in the checkpoint, [{string.Join(", ", target.shape)}] in the model.");
        target.copy_(value);
    }

    private static long Scalar(Dictionary<string, Tensor> tensors, string key) => tensors.TryGetValue(key, out var value)
        ? value.item<long>()
        : throw new InvalidDataException($"The DiT^DH training state has no '{key}' (is it a checkpoint of another workload?).");
}
