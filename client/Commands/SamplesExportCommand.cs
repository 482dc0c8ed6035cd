using System.CommandLine;
using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>
/// `rae samples export JOB --out DIR`: fetches a completed sampling job's FID <c>.npz</c> and its PNGs through the cluster
/// (chunked, each file checked against its SHA-256), so no storage credentials are needed: DIR/samples.npz, DIR/images/*.png.
/// </summary>
public sealed class SamplesExportCommand : ClusterCommand
{
    private readonly Argument<string> _jobId = JobIdArgument("The sampling job's id");
    private readonly Option<string> _output = new("--out") { HelpName = "DIR", Description = "Folder to write samples.npz and images/ into", Required = true };

    public override string Name => "samples export";

    public override string Summary => "Fetch a sampling job's .npz and PNGs through the cluster (checksummed)";

    protected override IEnumerable<Symbol> OwnSymbols => [_jobId, _output];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var jobId = parsed.GetRequiredValue(_jobId);
        var output = Path.GetFullPath(parsed.GetRequiredValue(_output));
        if (File.Exists(output)) throw new UsageException($"--out must be a folder, '{output}' is a file");
        return async (client, ctx) =>
        {
            await client.GetJobAsync(jobId);
            var files = await EvaluationTransfers.ExportSamplesAsync(client.Grains, jobId, output, ctx.CancellationToken);
            var bytes = files.Sum(f => f.Size);
            if (ctx.Json) ctx.WriteJson(new { jobId, output, files });
            else
                ctx.Output.WriteLine($"exported {files.Count} file(s) of {jobId} ({files.Count(f => f.Name.EndsWith(".png", StringComparison.Ordinal))} PNGs, {bytes / 1048576.0:F2} MiB) to {output}");
            return Ok;
        };
    }
}
