using System.CommandLine;
using System.Globalization;
using RAE.Client.Cluster;

namespace RAE.Client.Commands;

/// <summary>
/// `rae cluster status`: every active silo with its devices, ranks (and the job using each), CPU, memory and activations,
/// the training jobs that wait for devices (in queue order), then the training and sampling workloads the silos offer and where.
/// </summary>
public sealed class ClusterStatusCommand : ClusterCommand
{
    public override string Name => "cluster status";

    public override string Summary => "Silos, ranks, devices, load and the workloads they offer";

    protected override IEnumerable<Symbol> OwnSymbols => [];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        return async (client, ctx) =>
        {
            var report = await client.GetClusterStatusAsync();
            if (ctx.Json)
            {
                ctx.WriteJson(report);
                return Ok;
            }
            ctx.Output.WriteLine($"{report.Silos.Count} silo(s), {report.Silos.Sum(s => s.Ranks.Count)} rank(s), {report.ActiveJobs} active job(s)");
            ctx.Output.WriteLine($"{"silo",-28} {"status",-8} {"devices",-16} {"busy ranks",-10} {"cpu",6} {"memory",10} {"activations",11}");
            foreach (var silo in report.Silos)
            {
                var busy = silo.Ranks.Count(r => r.BusyWithJob is not null);
                var cpu = silo.CpuUsagePercent is { } c ? string.Create(CultureInfo.InvariantCulture, $"{c:F0}%") : "-";
                var memory = silo.MemoryUsageBytes is { } m ? string.Create(CultureInfo.InvariantCulture, $"{m / 1048576.0:F0} MiB") : "-";
                ctx.Output.WriteLine($"{silo.Address,-28} {silo.Status,-8} {string.Join(",", silo.Devices),-16} {busy + "/" + silo.Ranks.Count,-10} {cpu,6} {memory,10} {silo.Activations,11}");
                foreach (var rank in silo.Ranks.Where(r => r.BusyWithJob is not null))
                    ctx.Output.WriteLine($"  rank {rank.Device}: {rank.BusyWithJob}");
            }
            ctx.Output.WriteLine(report.Queue.Count == 0 ? "queue: no job waits for devices" : $"queue: {report.Queue.Count} job(s) wait for devices");
            foreach (var (queued, index) in report.Queue.Select((queued, index) => (queued, index)))
            {
                var ranks = queued.MinRanks == queued.MaxRanks ? $"{queued.MinRanks}" : $"{queued.MinRanks}..{queued.MaxRanks}";
                ctx.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {index + 1}. {queued.JobId}: needs {ranks} rank(s), waiting since {queued.Since:u} ({(DateTimeOffset.UtcNow - queued.Since).TotalSeconds:F0} s)"));
            }
            ctx.Output.WriteLine("workloads");
            foreach (var offer in report.Workloads)
            {
                var where = string.Join(", ", offer.Placements.Select(p => $"{p.SiloAddress} [{string.Join(",", p.Devices)}]"));
                ctx.Output.WriteLine($"  {offer.Kind.ToString().ToLowerInvariant(),-8} {offer.Workload,-12} {offer.Placements.Count} silo(s): {where}");
            }
            return Ok;
        };
    }
}
