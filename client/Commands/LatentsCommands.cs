using System.CommandLine;
using System.Globalization;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;

namespace RAE.Client.Commands;

/// <summary>`rae latents list`: the committed latent datasets (an encode job that did not finish is never listed).</summary>
public sealed class LatentsListCommand : ClusterCommand
{
    public override string Name => "latents list";

    public override string Summary => "The latent datasets in the cluster's blob store";

    protected override IEnumerable<Symbol> OwnSymbols => [];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context) => async (client, ctx) =>
    {
        var latents = await client.Grains.GetGrain<ILatentCatalogGrain>(0).List();
        if (ctx.Json)
        {
            ctx.WriteJson(latents);
            return Ok;
        }
        if (latents.Count == 0) ctx.Output.WriteLine("no latent dataset yet (make one with rae encode CONFIG --dataset NAME)");
        foreach (var l in latents)
            ctx.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{l.Name,-32} {l.Count,8} latents [{string.Join("x", l.LatentShape)}] {l.DType,-8} {l.Shards,4} shards  {l.Bytes / 1024.0 / 1024.0,9:F1} MiB  from {l.Dataset} ({l.Encoder} at {l.ImageSize} px)"));
        return Ok;
    };
}

/// <summary>`rae latents show NAME`: source dataset, encoder, shape, classes with counts, statistics.</summary>
public sealed class LatentsShowCommand : ClusterCommand
{
    public override string Name => "latents show";

    private readonly Argument<string> _name = new("NAME") { Description = "The latent dataset's name" };

    public override string Summary => "A latent dataset's source, encoder, shape, classes and statistics";

    protected override IEnumerable<Symbol> OwnSymbols => [_name];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var name = parsed.GetRequiredValue(_name);
        if (DatasetNames.Problem(name) is { } problem) throw new UsageException(problem);
        return async (client, ctx) =>
        {
            var l = await client.Grains.GetGrain<ILatentCatalogGrain>(0).Describe(name);
            if (ctx.Json)
            {
                ctx.WriteJson(l);
                return Ok;
            }
            var output = ctx.Output;
            output.WriteLine($"latents {l.Name}: {l.Count} latents [{string.Join(", ", l.LatentShape)}] {l.DType}{(l.Flips ? " with flips" : "")} in {l.Shards} shards");
            output.WriteLine($"source  dataset {l.Dataset}, {l.Encoder} at {l.ImageSize} px");
            output.WriteLine($"stats   {l.StatisticsMethod ?? "none"} (stat.pt, stat.safetensors)");
            output.WriteLine("classes");
            for (var label = 0; label < l.Classes.Count; label++) output.WriteLine($"  {label,4}  {l.Classes[label],-24} {l.CountsPerClass[label],8}");
            return Ok;
        };
    }
}

/// <summary>`rae latents remove NAME`: deletes the manifest (so it is no longer listed), then its shards and statistics.</summary>
public sealed class LatentsRemoveCommand : ClusterCommand
{
    public override string Name => "latents remove";

    private readonly Argument<string> _name = new("NAME") { Description = "The latent dataset's name" };

    public override string Summary => "Remove a latent dataset (or an unfinished encode job's files) from the cluster's blob store";

    protected override IEnumerable<Symbol> OwnSymbols => [_name];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var name = parsed.GetRequiredValue(_name);
        if (DatasetNames.Problem(name) is { } problem) throw new UsageException(problem);
        return async (client, ctx) =>
        {
            var removed = await client.Grains.GetGrain<ILatentCatalogGrain>(0).Remove(name);
            if (ctx.Json) ctx.WriteJson(new { name, removed });
            else if (removed) ctx.Output.WriteLine($"removed latent dataset {name}");
            if (!removed) ctx.Error.WriteLine($"rae latents remove: no latent dataset named '{name}'");
            return removed ? Ok : Failed;
        };
    }
}
