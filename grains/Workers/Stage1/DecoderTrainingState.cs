using System.Globalization;
using System.Text;
using RAE.Models.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// The exact-resume state of a Stage 1 rank as safetensors. Keys: <c>model.&lt;key&gt;</c> (the decoder) and
/// <c>ema.&lt;key&gt;</c> (its EMA), both with the released <c>model.pt</c> keys of spec §3.6, so that
/// <c>rae checkpoints export --part decoder-ema</c> only strips the prefix; <c>disc.&lt;key&gt;</c> (the discriminator's
/// state dict: heads with their spectral-norm vectors); <c>optimizer.*</c> and <c>disc_optimizer.*</c> (AdamW moments by
/// parameter name and step); <c>trainer.step</c> (generator steps = the generator schedule's index),
/// <c>trainer.disc_step</c> (discriminator updates = its schedule's index), <c>trainer.seed</c>, <c>trainer.global_batch</c>,
/// <c>data.position</c> (global samples consumed) and <c>config.yaml</c>. The data order, crops, noise and DiffAug draws are
/// functions of (seed, step, slot), so step and seed are the whole RNG state.
/// </summary>
internal static class DecoderTrainingState
{
    public const string Format = "rae-decoder-trainer-v1";

    public static void Save(DecoderRankWorker worker, Stream destination)
    {
        var context = worker.Context;
        var trainer = worker.Trainer;
        using var scope = NewDisposeScope();
        var tensors = new List<KeyValuePair<string, Tensor>>();
        foreach (var (name, value) in worker.Rae.Decoder.state_dict()) tensors.Add(new($"model.{name}", value));
        foreach (var (name, value) in worker.EmaDecoder.state_dict()) tensors.Add(new($"ema.{name}", value));
        if (worker.Discriminator is { } discriminator)
            foreach (var (name, value) in discriminator.Module.state_dict()) tensors.Add(new($"disc.{name}", value));
        AddOptimizer(tensors, "optimizer", trainer.GeneratorOptimizer, Names(worker.Rae.Decoder, trainer.DecoderParameters));
        if (trainer.DiscriminatorOptimizer is { } discOptimizer && worker.Discriminator is { } disc)
            AddOptimizer(tensors, "disc_optimizer", discOptimizer, Names(disc.Module, trainer.DiscriminatorParameters));
        var yaml = worker.Job.Config.ToYaml();
        tensors.Add(new("trainer.step", tensor(trainer.StepCount)));
        tensors.Add(new("trainer.disc_step", tensor(trainer.DiscriminatorStepCount)));
        tensors.Add(new("trainer.seed", tensor(context.Spec.Seed)));
        tensors.Add(new("trainer.global_batch", tensor((long)context.Spec.GlobalBatchSize)));
        tensors.Add(new("data.position", tensor(trainer.StepCount * context.Spec.GlobalBatchSize)));
        tensors.Add(new("config.yaml", tensor(Encoding.UTF8.GetBytes(yaml))));
        SafeTensors.Save(destination, tensors, new Dictionary<string, string>
        {
            ["format"] = Format,
            ["step"] = trainer.StepCount.ToString(CultureInfo.InvariantCulture),
            ["config"] = yaml,
        });
    }

    /// <summary>Restores a state written by <see cref="Save"/>; the seed and global batch must be the job's.</summary>
    public static void Load(DecoderRankWorker worker, Stream state)
    {
        var context = worker.Context;
        var trainer = worker.Trainer;
        var tensors = SafeTensors.Load(state, "Stage 1 training state");
        try
        {
            var seed = Scalar(tensors, "trainer.seed");
            var globalBatch = Scalar(tensors, "trainer.global_batch");
            if (seed != context.Spec.Seed || globalBatch != context.Spec.GlobalBatchSize)
                throw new InvalidDataException($"The checkpoint was taken with seed {seed} and global batch {globalBatch}; this job has seed {context.Spec.Seed} and global batch {context.Spec.GlobalBatchSize}.");
            using (no_grad())
            {
                CopyInto(worker.Rae.Decoder.state_dict(), tensors, "model.");
                CopyInto(worker.EmaDecoder.state_dict(), tensors, "ema.");
                if (worker.Discriminator is { } discriminator) CopyInto(discriminator.Module.state_dict(), tensors, "disc.");
                LoadOptimizer(tensors, "optimizer", trainer.GeneratorOptimizer, Names(worker.Rae.Decoder, trainer.DecoderParameters));
                if (trainer.DiscriminatorOptimizer is { } discOptimizer && worker.Discriminator is { } disc)
                    LoadOptimizer(tensors, "disc_optimizer", discOptimizer, Names(disc.Module, trainer.DiscriminatorParameters));
            }
            trainer.StepCount = Scalar(tensors, "trainer.step");
            trainer.DiscriminatorStepCount = Scalar(tensors, "trainer.disc_step");
        }
        finally
        {
            foreach (var value in tensors.Values) value.Dispose();
        }
    }

    private static List<string> Names(nn.Module module, IReadOnlyList<Parameter> parameters)
    {
        var byHandle = module.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        return parameters.Select(p => byHandle.TryGetValue(p.Handle, out var name) ? name
            : throw new InvalidOperationException("a trained parameter is not a named parameter of its module")).ToList();
    }

    private static List<AdamW.State> States(AdamW optimizer, int expected)
    {
        var states = optimizer.state_dict().State.Cast<AdamW.State>().ToList();
        if (states.Count != expected) throw new InvalidOperationException($"AdamW holds {states.Count} parameter states for {expected} parameters.");
        return states;
    }

    private static void AddOptimizer(List<KeyValuePair<string, Tensor>> tensors, string prefix, AdamW optimizer, List<string> names)
    {
        var states = States(optimizer, names.Count);
        for (var i = 0; i < names.Count; i++)
        {
            tensors.Add(new($"{prefix}.exp_avg.{names[i]}", states[i].exp_avg));
            tensors.Add(new($"{prefix}.exp_avg_sq.{names[i]}", states[i].exp_avg_sq));
        }
        tensors.Add(new($"{prefix}.step", tensor(states.Count > 0 ? states[0].step : 0)));
    }

    private static void LoadOptimizer(Dictionary<string, Tensor> tensors, string prefix, AdamW optimizer, List<string> names)
    {
        var states = States(optimizer, names.Count);
        var step = Scalar(tensors, $"{prefix}.step");
        for (var i = 0; i < names.Count; i++)
        {
            CopyTensor(states[i].exp_avg, tensors, $"{prefix}.exp_avg.{names[i]}");
            CopyTensor(states[i].exp_avg_sq, tensors, $"{prefix}.exp_avg_sq.{names[i]}");
            states[i].step = step;
        }
    }

    private static void CopyInto(IDictionary<string, Tensor> target, Dictionary<string, Tensor> source, string prefix)
    {
        foreach (var (name, value) in target) CopyTensor(value, source, prefix + name);
    }

    private static void CopyTensor(Tensor target, Dictionary<string, Tensor> source, string key)
    {
        if (!source.TryGetValue(key, out var value))
            throw new InvalidDataException($"The Stage 1 training state has no '{key}' (is it a checkpoint of another model or workload?).");
        if (!value.shape.SequenceEqual(target.shape))
            throw new InvalidDataException($"'{key}' has shape [{string.Join(", ", value.shape)}] in the checkpoint, [{string.Join(", ", target.shape)}] in the model.");
        target.copy_(value);
    }

    private static long Scalar(Dictionary<string, Tensor> tensors, string key) => tensors.TryGetValue(key, out var value)
        ? value.item<long>()
        : throw new InvalidDataException($"The Stage 1 training state has no '{key}' (is it a checkpoint of another workload?).");
}
