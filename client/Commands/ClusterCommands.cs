using System.Text.Json;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;

namespace RAE.Client.Commands;

/// <summary>Shared plumbing of the commands that talk to a running cluster: connection, --json, exit codes.</summary>
public abstract class ClusterCommand : ICliCommand
{
    internal static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };

    public abstract string Name { get; }
    public abstract string Summary { get; }

    public async Task<int> RunAsync(CommandArguments arguments, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var settings = ClusterConnection.Settings.Read(arguments);
        var json = arguments.Flag("json");
        var prepared = Prepare(arguments);
        arguments.RejectUnknownOptions();
        try
        {
            await using var connection = await ClusterConnection.ConnectAsync(settings, cancellationToken);
            return await RunAsync(connection.Client, prepared, json, output, cancellationToken);
        }
        catch (ClusterUnreachableException unreachable)
        {
            error.WriteLine($"rae {Name}: {unreachable.Message}");
            return 3;
        }
        catch (RaeJobException job)
        {
            error.WriteLine($"rae {Name}: {job.Message}");
            return 1;
        }
    }

    /// <summary>Reads the command's own positional words and options before unknown options are rejected.</summary>
    protected virtual IReadOnlyList<string> Prepare(CommandArguments arguments) => arguments.Positional;

    protected abstract Task<int> RunAsync(IClusterClient client, IReadOnlyList<string> words, bool json, TextWriter output, CancellationToken cancellationToken);
}

public sealed class ClusterStatusCommand : ClusterCommand
{
    public override string Name => "cluster status";
    public override string Summary => "Silos, their devices and the jobs that run (--gateway host:port | --azure conn, --json)";

    protected override async Task<int> RunAsync(IClusterClient client, IReadOnlyList<string> words, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        var hosts = await client.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: false);
        var silos = new List<(string Address, string Status, SiloComputeInfo? Compute)>();
        foreach (var (silo, siloStatus) in hosts.OrderBy(h => h.Key.ToString(), StringComparer.Ordinal))
        {
            SiloComputeInfo? compute = null;
            if (siloStatus == SiloStatus.Active)
            {
                try
                {
                    compute = await client.GetGrain<ISiloAgentGrain>(SiloBoundKey.Agent(silo)).GetComputeInfo().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken);
                }
                catch (Exception agentError) when (agentError is not OperationCanceledException)
                {
                    compute = null;
                }
            }
            silos.Add((silo.ToString(), siloStatus.ToString(), compute));
        }
        var jobs = await client.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).List();
        var running = jobs.Where(j => j.State is JobState.Pending or JobState.Running or JobState.Recovering).ToList();
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new
            {
                silos = silos.Select(s => new { address = s.Address, status = s.Status, devices = s.Compute?.Devices ?? [], threadsPerRank = s.Compute?.ThreadsPerRank }),
                activeJobs = running,
            }, Json));
            return 0;
        }
        output.WriteLine($"{silos.Count(s => s.Status == "Active")} active silo(s), {silos.Sum(s => s.Compute?.Devices.Count ?? 0)} rank device(s), {running.Count} active job(s)");
        foreach (var silo in silos)
            output.WriteLine($"  {silo.Address,-32} {silo.Status,-10} devices: {(silo.Compute is null ? "-" : string.Join(", ", silo.Compute.Devices))}{(silo.Compute is null ? "" : $"  threads/rank: {silo.Compute.ThreadsPerRank}")}");
        foreach (var job in running)
            output.WriteLine($"  job {job.JobId} {job.State} {job.Progress}/{job.Total}");
        return 0;
    }
}

public sealed class JobsListCommand : ClusterCommand
{
    public override string Name => "jobs list";
    public override string Summary => "Every job the cluster knows, oldest first (--json)";

    protected override async Task<int> RunAsync(IClusterClient client, IReadOnlyList<string> words, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        var jobs = await client.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).List();
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(jobs, Json));
            return 0;
        }
        if (jobs.Count == 0) output.WriteLine("no jobs");
        foreach (var job in jobs)
            output.WriteLine($"{job.JobId,-36} {job.Kind,-9} {job.State,-10} {job.Progress,6}/{job.Total,-6} {job.UpdatedAt:u}{(job.FailureReason is null ? "" : "  " + job.FailureReason)}");
        return 0;
    }
}

public sealed class JobsShowCommand : ClusterCommand
{
    public override string Name => "jobs show";
    public override string Summary => "One job: state, ranks, checkpoints and recent metrics (jobs show <job-id> [--json])";

    protected override IReadOnlyList<string> Prepare(CommandArguments arguments) =>
        arguments.Positional.Count == 1 ? arguments.Positional : throw new UsageException("expects exactly one job id");

    protected override async Task<int> RunAsync(IClusterClient client, IReadOnlyList<string> words, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        var jobId = words[0];
        var summary = await client.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).Get(jobId);
        if (summary.Kind != JobKind.Training)
        {
            output.WriteLine(json ? JsonSerializer.Serialize(summary, Json) : $"{summary.JobId} {summary.Kind} {summary.State} {summary.Progress}/{summary.Total}");
            return 0;
        }
        var coordinator = client.GetGrain<ITrainingCoordinatorGrain>(jobId);
        var status = await coordinator.GetStatus();
        var metrics = await coordinator.GetMetrics(Math.Max(0, status.Step - 9));
        var checkpoints = await client.GetGrain<ICheckpointStoreGrain>(jobId).List();
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new { status, metrics, checkpoints }, Json));
            return 0;
        }
        output.WriteLine($"{status.JobId}: {status.State}, step {status.Step}/{status.Spec.Steps}, workload {status.Spec.Workload}, {status.Ranks.Count} rank(s), group generation {status.GroupGeneration}, recoveries {status.Recoveries}");
        if (status.FailureReason is not null) output.WriteLine($"  failed: {status.FailureReason}");
        for (var rank = 0; rank < status.Ranks.Count; rank++)
            output.WriteLine($"  rank {rank}: {status.Ranks[rank].Device} on {status.Ranks[rank].SiloAddress}");
        foreach (var checkpoint in checkpoints)
            output.WriteLine($"  checkpoint step {checkpoint.Step}: {checkpoint.SizeBytes} bytes, sha256 {checkpoint.Sha256[..12]}..., {checkpoint.Location}");
        foreach (var m in metrics)
            output.WriteLine(FormattableString.Invariant($"  step {m.Step,6}  loss {m.Loss:F6}  lr {m.LearningRate:E2}  {m.StepSeconds * 1000:F1} ms  {m.SamplesPerSecondPerRank.Sum():F1} samples/s"));
        return 0;
    }
}

public sealed class JobsCancelCommand : ClusterCommand
{
    public override string Name => "jobs cancel";
    public override string Summary => "Cancel a job (jobs cancel <job-id>)";

    protected override IReadOnlyList<string> Prepare(CommandArguments arguments) =>
        arguments.Positional.Count == 1 ? arguments.Positional : throw new UsageException("expects exactly one job id");

    protected override async Task<int> RunAsync(IClusterClient client, IReadOnlyList<string> words, bool json, TextWriter output, CancellationToken cancellationToken)
    {
        await client.GetGrain<IJobRegistryGrain>(IJobRegistryGrain.DefaultKey).Cancel(words[0]);
        output.WriteLine(json ? JsonSerializer.Serialize(new { cancelled = words[0] }, Json) : $"cancel requested for {words[0]}");
        return 0;
    }
}
