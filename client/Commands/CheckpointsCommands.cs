using System.CommandLine;
using System.Globalization;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;
using RAE.Models.IO;

namespace RAE.Client.Commands;

/// <summary>`rae checkpoints list JOB`: the job's committed checkpoints, oldest first.</summary>
public sealed class CheckpointsListCommand : ClusterCommand
{
    public override string Name => "checkpoints list";

    private readonly Argument<string> _jobId = JobIdArgument("The training job's id");

    public override string Summary => "Committed checkpoints of a training job (step, loss, size, checksum, location)";

    protected override IEnumerable<Symbol> OwnSymbols => [_jobId];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var jobId = parsed.GetRequiredValue(_jobId);
        return async (client, ctx) =>
        {
            await client.GetJobAsync(jobId);
            var checkpoints = await client.ListCheckpointsAsync(jobId);
            if (ctx.Json)
            {
                ctx.WriteJson(checkpoints);
                return Ok;
            }
            if (checkpoints.Count == 0) ctx.Output.WriteLine($"{jobId} has no committed checkpoint yet");
            foreach (var c in checkpoints)
            {
                ctx.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"step {c.Step,8}  loss {(c.Loss is { } loss ? loss.ToString("F5", CultureInfo.InvariantCulture) : "-"),9}  {c.SizeBytes / 1024.0,10:F1} KiB  sha256 {c.Sha256[..Math.Min(12, c.Sha256.Length)].ToLowerInvariant()}  {c.CommittedAt:u}  {c.Location}"));
            }
            return Ok;
        };
    }
}

/// <summary>
/// `rae checkpoints export JOB --out FILE.safetensors`: copies the model weights of a committed checkpoint (latest or
/// --step) into a `.safetensors` file with the reference's key names. --weights ema (default) or model picks the
/// "ema."/"model." part of a full training state; a payload of bare weights is exported as is.
/// </summary>
public sealed class CheckpointsExportCommand : ClusterCommand
{
    public override string Name => "checkpoints export";

    private readonly Argument<string> _jobId = JobIdArgument("The training job's id");
    private readonly Option<long?> _step = new("--step") { HelpName = "N", Description = "The checkpoint's step [default: the latest]" };
    private readonly Option<string> _weights = CliOptions.Choice("--weights", "Which weights of a training state to export [default: ema]", null, "ema", "model");
    private readonly Option<string> _part = CliOptions.Choice("--part", "A Stage 1 checkpoint's part: decoder-ema (the EMA decoder, the released model.pt keys) or decoder; same as --weights ema/model", null, "decoder-ema", "decoder");
    private readonly Option<string> _output = new("--out") { HelpName = "FILE.safetensors", Description = "Where to write the weights", Required = true };

    public override string Summary => "Export a checkpoint's weights to .safetensors with the reference's key names";

    protected override IEnumerable<Symbol> OwnSymbols => [_jobId, _step, _weights, _part, _output];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var jobId = parsed.GetRequiredValue(_jobId);
        var step = parsed.GetValue(_step);
        if (step < 0) throw new UsageException($"--step expects a step number, got {step}");
        var part = parsed.GetValue(_part);
        if (part is not null && parsed.GetValue(_weights) is not null) throw new UsageException("give --weights or --part, not both");
        var weightsOption = part switch { "decoder-ema" => "ema", "decoder" => "model", _ => parsed.GetValue(_weights) };
        var weights = weightsOption ?? "ema";
        var output = parsed.GetRequiredValue(_output);
        if (!output.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new UsageException($"--out must name a .safetensors file, got '{output}'");

        return async (client, ctx) =>
        {
            await client.GetJobAsync(jobId);
            var checkpoint = await client.GetCheckpointAsync(jobId, step);
            var exported = await ExportAsync(client.Grains, checkpoint, weights, weightsOption is not null, Path.GetFullPath(output));
            if (ctx.Json) ctx.WriteJson(new { jobId, checkpoint.Step, output = Path.GetFullPath(output), tensors = exported });
            else ctx.Output.WriteLine($"exported {exported} tensor(s) of {jobId} step {checkpoint.Step} to {Path.GetFullPath(output)}");
            return Ok;
        };
    }

    /// <summary>
    /// Fetches the checkpoint's payload through the cluster (verified against the catalog) and writes the selected
    /// tensors; <see cref="RaeJobException"/> when the payload cannot be fetched, is corrupt or holds no weights, and
    /// then nothing is written at <paramref name="output"/>.
    /// </summary>
    public static async Task<int> ExportAsync(IGrainFactory grains, CheckpointInfo checkpoint, string weights, bool weightsExplicit, string output, CancellationToken cancellationToken = default)
    {
        var folder = Path.GetDirectoryName(output);
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        var payloadFile = output + ".payload.tmp";
        try
        {
            await using (var file = new FileStream(payloadFile, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true))
                await CheckpointDownloader.DownloadAsync(grains, checkpoint, file, cancellationToken);
            return ExportPayload(checkpoint, payloadFile, weights, weightsExplicit, output);
        }
        finally
        {
            File.Delete(payloadFile);
        }
    }

    /// <summary>Writes the selected tensors of a payload already fetched (and verified) into <paramref name="payloadFile"/>;
    /// <see cref="RaeJobException"/> when it holds no weights.</summary>
    public static int ExportPayload(CheckpointInfo checkpoint, string payloadFile, string weights, bool weightsExplicit, string output)
    {
        if (!LooksLikeSafeTensors(payloadFile))
            throw new RaeJobException($"Checkpoint '{checkpoint.Location}' is not a safetensors container (its workload writes its own format), so it has no named weights to export.");

        using var scope = TorchSharp.torch.NewDisposeScope();
        using var payload = File.OpenRead(payloadFile);
        // Only the exported part is read: a DiT^DH-S training state is over 3 GB, one part of it under 1 GB.
        string prefix;
        Dictionary<string, TorchSharp.torch.Tensor> tensors;
        try
        {
            (prefix, tensors) = CheckpointParts.Load(payload, weights, weightsExplicit, $"Checkpoint '{checkpoint.Location}'");
        }
        catch (MissingCheckpointPartException error)
        {
            throw new RaeJobException(error.Message, error);
        }
        var selected = tensors.Select(t => KeyValuePair.Create(t.Key[prefix.Length..], t.Value)).ToList();
        var folder = Path.GetDirectoryName(output);
        if (!string.IsNullOrEmpty(folder)) Directory.CreateDirectory(folder);
        var temp = output + ".tmp";
        SafeTensors.Save(temp, selected.OrderBy(t => t.Key, StringComparer.Ordinal),
            new Dictionary<string, string> { ["job"] = checkpoint.JobId, ["step"] = checkpoint.Step.ToString(CultureInfo.InvariantCulture), ["weights"] = weights });
        File.Move(temp, output, overwrite: true);
        return selected.Count;
    }

    private static bool LooksLikeSafeTensors(string payloadFile)
    {
        using var file = File.OpenRead(payloadFile);
        Span<byte> head = stackalloc byte[9];
        if (file.Length < 10 || file.ReadAtLeast(head, head.Length, throwOnEndOfStream: false) < head.Length) return false;
        var headerLength = BitConverter.ToUInt64(head);
        return headerLength > 1 && headerLength <= (ulong)(file.Length - 8) && head[8] == (byte)'{';
    }
}
