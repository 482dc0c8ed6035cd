using System.CommandLine;
using System.Globalization;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;
using RAE.Models.Data;

namespace RAE.Client.Commands;

/// <summary>
/// `rae datasets add NAME SOURCE [--split NAME] [--shard-size N]`: validates every image of an ImageFolder tree or
/// MNIST-style IDX files on this machine (skipped files are reported by name with the reason; past the bad-fraction
/// threshold the dataset is refused), then uploads the shards through the cluster into its blob store.
/// </summary>
public sealed class DatasetsAddCommand : ClusterCommand
{
    public override string Name => "datasets add";

    private readonly Argument<string> _name = new("NAME") { Description = "The dataset's name: [a-z0-9-_], at most 64 characters" };
    private readonly Argument<string> _source = new("SOURCE") { Description = "An ImageFolder tree (<root>/<class>/<image>) or a folder or file of MNIST-style IDX files" };
    private readonly Option<string?> _split = new("--split") { HelpName = "NAME", Description = "The split: a sub-folder of an ImageFolder root, or train / t10k of IDX files" };
    private readonly Option<int> _shardSize = new("--shard-size") { HelpName = "N", Description = "Images per shard", DefaultValueFactory = _ => new DatasetBuildOptions().ShardSize };

    public override string Summary => "Validate an image dataset locally and upload it into the cluster's blob store";

    protected override IEnumerable<Symbol> OwnSymbols => [_name, _source, _split, _shardSize];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var name = parsed.GetRequiredValue(_name);
        if (DatasetNames.Problem(name) is { } problem) throw new UsageException(problem);
        var shardSize = parsed.GetValue(_shardSize);
        if (shardSize <= 0) throw new UsageException($"--shard-size must be a positive number of images, got {shardSize}");
        var source = OpenSource(parsed.GetRequiredValue(_source), parsed.GetValue(_split));
        var options = new DatasetBuildOptions { ShardSize = shardSize };
        return (client, ctx) => AddAsync(client.Grains, name, source, options, ctx);
    }

    /// <summary>Validates, reports and uploads; exit code 1 when the dataset is refused (too many bad files) or the cluster refuses it.</summary>
    public static async Task<int> AddAsync(IGrainFactory grains, string name, IImageSource source, DatasetBuildOptions options, CommandContext context)
    {
        var folder = Path.Combine(Path.GetTempPath(), $"rae-dataset-{name}-{Guid.NewGuid():N}");
        try
        {
            DatasetManifest manifest;
            try
            {
                var progress = context.Live ? new ValidationProgress(context.Output) : null;
                manifest = new DatasetBuilder(options).Build(name, source, new DirectoryDatasetSink(folder), progress);
                progress?.Finish();
            }
            catch (DatasetRefusedException refused)
            {
                if (context.Json) context.WriteJson(new { name, refused = true, skipped = refused.Skipped });
                context.Error.WriteLine($"rae datasets add: {refused.Message}");
                return Failed;
            }
            if (!context.Json)
            {
                context.Output.WriteLine($"validated {manifest.ImageCount + manifest.Skipped.Count} file(s) of {source.Description}: {manifest.ImageCount} image(s) in {manifest.Classes.Count} class(es), {manifest.Skipped.Count} skipped");
                foreach (var skipped in manifest.Skipped) context.Output.WriteLine($"  skipped {skipped.Name}: {skipped.Reason}");
            }
            var added = await DatasetUploader.UploadAsync(grains, manifest, folder, cancellationToken: context.CancellationToken);
            if (context.Json) context.WriteJson(added);
            else context.Output.WriteLine($"added dataset {added.Name}: {added.ImageCount} image(s), {added.Classes.Count} class(es), {added.Shards.Count} shard(s), {added.TotalBytes / 1024.0:F1} KiB");
            return Ok;
        }
        finally
        {
            try { Directory.Delete(folder, recursive: true); } catch (DirectoryNotFoundException) { }
        }
    }

    private static IImageSource OpenSource(string path, string? split)
    {
        try
        {
            return ImageSources.Open(Path.GetFullPath(path), split);
        }
        catch (Exception error) when (error is IOException or ArgumentException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new UsageException(error.Message);
        }
    }
}

/// <summary>A count of validated files on the terminal, redrawn at most twice a second (a large dataset takes minutes).</summary>
internal sealed class ValidationProgress(TextWriter output) : IProgress<int>
{
    private readonly System.Diagnostics.Stopwatch _clock = System.Diagnostics.Stopwatch.StartNew();
    private TimeSpan _lastDrawn = TimeSpan.MinValue;
    private bool _drawn;

    public void Report(int value)
    {
        if (_clock.Elapsed - _lastDrawn < TimeSpan.FromMilliseconds(500)) return;
        _lastDrawn = _clock.Elapsed;
        _drawn = true;
        output.Write(string.Create(CultureInfo.InvariantCulture, $"\rvalidating: {value} file(s), {value / Math.Max(_clock.Elapsed.TotalSeconds, 1e-3):F0}/s "));
    }

    public void Finish()
    {
        if (_drawn) output.WriteLine();
    }
}

/// <summary>`rae datasets list`: the committed datasets (a half-uploaded one is never listed).</summary>
public sealed class DatasetsListCommand : ClusterCommand
{
    public override string Name => "datasets list";

    public override string Summary => "The datasets in the cluster's blob store";

    protected override IEnumerable<Symbol> OwnSymbols => [];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context) => async (client, ctx) =>
    {
        var datasets = await client.Grains.GetGrain<IDatasetCatalogGrain>(0).List();
        if (ctx.Json)
        {
            ctx.WriteJson(datasets);
            return Ok;
        }
        if (datasets.Count == 0) ctx.Output.WriteLine("no dataset yet (add one with rae datasets add NAME SOURCE)");
        foreach (var d in datasets)
            ctx.Output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{d.Name,-24} {d.ImageCount,8} images  {d.Classes.Count,4} classes  {d.Shards.Count,4} shards  {d.Skipped.Count,4} skipped  {d.TotalBytes / 1024.0,10:F1} KiB  {d.Source}"));
        return Ok;
    };
}

/// <summary>`rae datasets show NAME`: classes with their counts, shards with checksums, skipped files with reasons.</summary>
public sealed class DatasetsShowCommand : ClusterCommand
{
    public override string Name => "datasets show";

    private readonly Argument<string> _name = new("NAME") { Description = "The dataset's name" };

    public override string Summary => "A dataset's classes, counts per class, shards and skipped files";

    protected override IEnumerable<Symbol> OwnSymbols => [_name];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var name = parsed.GetRequiredValue(_name);
        if (DatasetNames.Problem(name) is { } problem) throw new UsageException(problem);
        return async (client, ctx) =>
        {
            var d = await client.Grains.GetGrain<IDatasetGrain>(name).Describe();
            if (ctx.Json)
            {
                ctx.WriteJson(d);
                return Ok;
            }
            var output = ctx.Output;
            output.WriteLine($"dataset {d.Name}: {d.ImageCount} images, {d.Classes.Count} classes, {d.Shards.Count} shards of up to {d.ShardSize}");
            output.WriteLine($"source  {d.Source}");
            output.WriteLine("classes");
            for (var label = 0; label < d.Classes.Count; label++) output.WriteLine($"  {label,4}  {d.Classes[label],-24} {d.CountsPerClass[label],8}");
            output.WriteLine("shards");
            foreach (var shard in d.Shards) output.WriteLine($"  {shard.File}  {shard.Images,6} images  {shard.Bytes,12} bytes  sha256 {shard.Sha256}");
            output.WriteLine($"skipped {d.Skipped.Count}");
            foreach (var skipped in d.Skipped) output.WriteLine($"  {skipped.Name}: {skipped.Reason}");
            return Ok;
        };
    }
}

/// <summary>`rae datasets remove NAME`: deletes the manifest (so it is no longer listed), then its shards.</summary>
public sealed class DatasetsRemoveCommand : ClusterCommand
{
    public override string Name => "datasets remove";

    private readonly Argument<string> _name = new("NAME") { Description = "The dataset's name" };

    public override string Summary => "Remove a dataset from the cluster's blob store";

    protected override IEnumerable<Symbol> OwnSymbols => [_name];

    protected override Func<RaeClient, CommandContext, Task<int>> Prepare(ParseResult parsed, CommandContext context)
    {
        var name = parsed.GetRequiredValue(_name);
        if (DatasetNames.Problem(name) is { } problem) throw new UsageException(problem);
        return async (client, ctx) =>
        {
            var removed = await client.Grains.GetGrain<IDatasetGrain>(name).Remove();
            if (ctx.Json) ctx.WriteJson(new { name, removed });
            else if (removed) ctx.Output.WriteLine($"removed dataset {name}");
            if (!removed) ctx.Error.WriteLine($"rae datasets remove: no dataset named '{name}'");
            return removed ? Ok : Failed;
        };
    }
}
