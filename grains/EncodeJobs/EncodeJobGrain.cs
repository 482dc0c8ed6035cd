using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Orleans.Concurrency;
using Orleans.Storage;
using RAE.GrainInterfaces;
using RAE.Grains.Datasets;
using RAE.Grains.Jobs;
using RAE.Grains.Placement;
using RAE.Grains.Storage;
using RAE.Models.Data;

namespace RAE.Grains.EncodeJobs;

[GenerateSerializer]
public sealed class EncodeJobState : IUnitJobState
{
    bool IUnitJobState.Started => Spec is not null;

    [Id(0)] public EncodeJobSpec? Spec { get; set; }
    [Id(1)] public JobState State { get; set; }
    /// <summary>The dataset as it was when the job started (its manifest's SHA-256 too): a resumed job encodes exactly it.</summary>
    [Id(2)] public DatasetDescription? Dataset { get; set; }
    [Id(3)] public string DatasetManifestSha256 { get; set; } = "";
    /// <summary>Committed latent shards by shard index; written after every shard, so a committed shard is never redone.</summary>
    [Id(4)] public SortedDictionary<int, EncodedShardResult> ShardsDone { get; set; } = [];
    [Id(5)] public string? FailureReason { get; set; }
    [Id(6)] public string? ManifestLocation { get; set; }
    [Id(7)] public DateTimeOffset CreatedAt { get; set; }
    [Id(8)] public DateTimeOffset UpdatedAt { get; set; }
    [Id(9)] public int Resumptions { get; set; }
}

/// <summary>
/// Drives one encode job: the dataset's image shards are handed to the shard encoders of every silo (one shard in flight
/// per encoder), each committed latent shard is recorded in persistent state as it finishes, then one encoder writes the
/// statistics and the job writes the manifest, last. Reentrant so that status and cancel answer while the loop awaits its
/// workers; only the loop writes the state while it runs. A re-activation continues an unfinished job with the shards
/// not yet committed. The latents do not depend on which silo encoded a shard, so the result is the same for any cluster.
/// </summary>
[Reentrant]
public sealed partial class EncodeJobGrain(
    [PersistentState("encode", RaeStorage.GrainStateProvider)] IPersistentState<EncodeJobState> job,
    IBlobStore blobs,
    ILogger<EncodeJobGrain> logger) : UnitJobGrain<EncodeJobState>(job), IEncodeJobGrain
{
    /// <summary>A shard that fails this many times in a row fails the job.</summary>
    public const int MaxShardAttempts = 3;

    private EncodePlan? _plan;
    private double _imagesPerSecond;

    protected override ILogger Logger => logger;

    public async Task Start(EncodeJobSpec spec)
    {
        if (State.Spec is not null) throw new RaeJobException($"Encode job '{JobId}' was already started; submit a new job instead.");
        var plan = EncodePlan.Create(JobId, spec);
        var (dataset, manifestSha256) = await ReadDatasetAsync(spec.Dataset);
        await EnsureLatentNameFreeAsync(spec.LatentName);
        var now = DateTimeOffset.UtcNow;
        Job.State = new EncodeJobState
        {
            Spec = spec, State = JobState.Pending, Dataset = dataset, DatasetManifestSha256 = manifestSha256, CreatedAt = now, UpdatedAt = now,
        };
        await Job.WriteStateAsync();
        _plan = plan;
        await ReportAsync();
        EnsureLoop();
    }

    public async Task Resume()
    {
        RequireSpec();
        await ResumeJobAsync();
    }

    public Task<EncodeJobStatus> GetStatus()
    {
        var spec = RequireSpec();
        var done = State.ShardsDone.Values;
        return Task.FromResult(new EncodeJobStatus
        {
            JobId = JobId,
            State = State.State,
            Spec = spec,
            ShardsTotal = State.Dataset?.Shards.Count ?? 0,
            ShardsDone = State.ShardsDone.Count,
            ImagesTotal = State.Dataset?.ImageCount ?? 0,
            ImagesDone = done.Sum(shard => (long)shard.Count + shard.Skipped.Count),
            ImagesPerSecond = _imagesPerSecond,
            Skipped = done.SelectMany(shard => shard.Skipped).ToList(),
            FailureReason = State.FailureReason,
            OutputLocation = State.ManifestLocation,
            CreatedAt = State.CreatedAt,
            UpdatedAt = State.UpdatedAt,
            Resumptions = State.Resumptions,
        });
    }

    public async Task Cancel()
    {
        RequireSpec();
        await CancelJobAsync();
    }

    protected override async Task RunLoopAsync()
    {
        try
        {
            var plan = _plan ??= EncodePlan.Create(JobId, RequireSpec());
            State.State = JobState.Running;
            State.UpdatedAt = DateTimeOffset.UtcNow;
            await Job.WriteStateAsync();
            await ReportAsync();
            await RunShardsAsync(plan);
            if (Deactivating) return;
            if (Loop.CancelRequested)
            {
                await FinishAsync(JobState.Cancelled, null);
                return;
            }
            await CommitAsync(plan);
            await FinishAsync(JobState.Completed, null);
            LogCompleted(JobId, plan.Spec.LatentName, State.ShardsDone.Count);
        }
        catch (InconsistentStateException error) when (!Deactivating)
        {
            // Another activation of this job wrote its state (this one was presumed lost with its silo): this activation
            // stops without writing; the job goes on from what the storage holds.
            LogLostOwnership(error, JobId);
            DeactivateOnIdle();
        }
        catch (Exception error) when (!Deactivating)
        {
            LogFailed(error, JobId);
            await FinishAsync(JobState.Failed, error is RaeJobException ? error.Message : $"{error.GetType().Name}: {error.Message}");
        }
    }

    private async Task RunShardsAsync(EncodePlan plan)
    {
        var dataset = State.Dataset!;
        var pending = new Queue<int>(Enumerable.Range(0, dataset.Shards.Count).Where(index => !State.ShardsDone.ContainsKey(index)));
        var attempts = new Dictionary<int, int>();
        var idle = new Queue<IShardEncoderGrain>(await DiscoverWorkersAsync(plan));
        var inFlight = new Dictionary<Task<EncodedShardResult>, (IShardEncoderGrain Worker, int Index)>();
        var clock = Stopwatch.StartNew();
        long imagesThisRun = 0;
        while (pending.Count > 0 || inFlight.Count > 0)
        {
            while (!Loop.CancelRequested && pending.Count > 0 && idle.Count > 0)
            {
                var index = pending.Dequeue();
                var worker = idle.Dequeue();
                var request = new EncodeShardRequest(JobId, index, dataset.Shards[index], dataset.Classes.Count, plan.Spec);
                inFlight[CancellableUnit(worker, worker.EncodeShard(request))] = (worker, index);
            }
            if (inFlight.Count == 0)
            {
                if (Loop.CancelRequested) return;
                idle = new Queue<IShardEncoderGrain>(await DiscoverWorkersAsync(plan));
                continue;
            }
            var finished = await Task.WhenAny(inFlight.Keys);
            var (owner, finishedIndex) = inFlight[finished];
            inFlight.Remove(finished);
            try
            {
                var result = await finished;
                State.ShardsDone[finishedIndex] = result;
                State.UpdatedAt = DateTimeOffset.UtcNow;
                await Job.WriteStateAsync();
                imagesThisRun += dataset.Shards[finishedIndex].Images;
                _imagesPerSecond = imagesThisRun / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
                idle.Enqueue(owner);
                await ReportAsync();
            }
            catch (Exception error) when (IsCancelledUnit(error))
            {
                // The job's cancel stopped the shard on its encoder: nothing of it was written, and nothing is retried.
            }
            catch (Exception error) when (error is not RaeJobException and not InconsistentStateException)
            {
                var tries = attempts[finishedIndex] = attempts.GetValueOrDefault(finishedIndex) + 1;
                LogShardFailed(error, JobId, dataset.Shards[finishedIndex].File, tries);
                if (tries >= MaxShardAttempts)
                    throw new RaeJobException($"Encode job '{JobId}': shard {dataset.Shards[finishedIndex].File} failed {tries} times; last error: {error.GetType().Name}: {error.Message}");
                pending.Enqueue(finishedIndex);
                // The worker may be on a silo that went away; it gets no more shards in this run.
            }
        }
    }

    /// <summary>Statistics from the committed shards in shard order, then the manifest, last.</summary>
    private async Task CommitAsync(EncodePlan plan)
    {
        var dataset = State.Dataset!;
        var shards = Enumerable.Range(0, dataset.Shards.Count).Select(index => State.ShardsDone[index]).ToList();
        var workers = await DiscoverWorkersAsync(plan);
        var statisticsCount = await workers[0].WriteStatistics(new LatentStatisticsRequest(JobId, plan.Spec, shards));
        var counts = new int[dataset.Classes.Count];
        foreach (var shard in shards)
            for (var label = 0; label < counts.Length; label++) counts[label] += shard.CountsPerClass[label];
        var manifest = new LatentDatasetManifest
        {
            Name = plan.Spec.LatentName,
            Dataset = plan.Spec.Dataset,
            DatasetManifestSha256 = State.DatasetManifestSha256,
            Encoder = plan.Encoder.EncoderCls,
            ConfigSha256 = plan.ConfigSha256,
            ImageSize = plan.Options.ImageSize,
            LatentShape = shards[0].LatentShape.ToArray(),
            DType = plan.Options.DTypeName,
            Flips = plan.Spec.Flip,
            Classes = dataset.Classes.ToArray(),
            CountsPerClass = counts,
            Shards = shards.Select(s => new LatentShardEntry(s.LatentFile, s.SourceShard, s.Count, s.Bytes, s.Sha256)).ToArray(),
            Statistics = new LatentStatisticsEntry(LatentBlobs.StatPtFile, LatentBlobs.StatSafetensorsFile, statisticsCount, plan.StatisticsMethodName),
        };
        var json = manifest.ToJson();
        LatentDatasetManifest.FromJson(json, $"the manifest of latent dataset '{plan.Spec.LatentName}'");
        await Guarded(() => blobs.PutBytesAsync(plan.ManifestPath, System.Text.Encoding.UTF8.GetBytes(json)), $"writing the manifest of '{plan.Spec.LatentName}'");
        State.ManifestLocation = plan.ManifestPath;
    }

    private async Task<(DatasetDescription Dataset, string ManifestSha256)> ReadDatasetAsync(string name)
    {
        BlobContent content;
        try
        {
            content = await Guarded(() => blobs.GetAsync(DatasetBlobs.ManifestPathOf(name)), $"reading dataset '{name}'");
        }
        catch (RaeJobException error) when (error.InnerException is BlobNotFoundException)
        {
            throw new RaeJobException($"Encode job '{JobId}': no dataset named '{name}' (rae datasets list shows the datasets).");
        }
        var dataset = DatasetGrain.Parse(name, content.Data);
        if (dataset.Shards.Count == 0) throw new RaeJobException($"Encode job '{JobId}': dataset '{name}' has no shards to encode.");
        return (dataset, DatasetManifest.Sha256Hex(content.Data));
    }

    /// <summary>Refuses a name that is committed or holds another job's files: latents are never overwritten.</summary>
    private async Task EnsureLatentNameFreeAsync(string name)
    {
        var what = $"checking latent dataset '{name}'";
        if (await Guarded(() => blobs.ExistsAsync(LatentBlobs.ManifestPathOf(name)), what))
            throw new RaeJobException($"Encode job '{JobId}': latent dataset '{name}' already exists; choose another --name or remove it first (rae latents remove {name}).");
        var leftovers = await Guarded(async () => await blobs.ListAsync(LatentBlobs.PrefixOf(name)).AnyAsync(), what);
        if (leftovers)
            throw new RaeJobException($"Encode job '{JobId}': latent dataset '{name}' is being written by another encode job or holds the files of one that did not finish; choose another --name or remove them (rae latents remove {name}).");
    }

    private async Task<IReadOnlyList<IShardEncoderGrain>> DiscoverWorkersAsync(EncodePlan plan)
    {
        var infos = await SiloAgents.AskEveryActiveSiloAsync(GrainFactory, agent => agent.GetComputeInfo(),
            (error, silo) => LogSiloSkipped(error, silo.ToString()));
        var workers = SiloAgents.SpreadOverSilos(infos)
            .Select(slot => GrainFactory.GetGrain<IShardEncoderGrain>(SiloBoundKey.Encoder(slot.Silo, slot.Device)))
            .ToList();
        if (plan.Spec.MaxWorkers > 0 && workers.Count > plan.Spec.MaxWorkers) workers = workers.Take(plan.Spec.MaxWorkers).ToList();
        return workers.Count > 0 ? workers : throw new RaeJobException($"Encode job '{JobId}': no silo offers a device to encode on.");
    }

    protected override async Task FinishAsync(JobState state, string? reason)
    {
        State.State = state;
        State.FailureReason = reason;
        State.UpdatedAt = DateTimeOffset.UtcNow;
        await Job.WriteStateAsync();
        await ReportAsync();
    }

    private Task ReportAsync() =>
        Reporter.ReportAsync(new JobSummary(JobId, JobKind.Encoding,
            State.State, State.ShardsDone.Count, State.Dataset?.Shards.Count ?? 0, State.CreatedAt, State.UpdatedAt, State.FailureReason));

    private EncodeJobSpec RequireSpec() => State.Spec ?? throw new RaeJobException($"Encode job '{JobId}' is unknown (it was never started).");

    private static async Task<T> Guarded<T>(Func<Task<T>> work, string what)
    {
        try
        {
            return await work();
        }
        catch (BlobStoreException error)
        {
            throw new RaeJobException($"latent storage failed while {what}: {error.Message}", error);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Encode job {JobId} completed: latent dataset {Name}, {Shards} shards")]
    private partial void LogCompleted(string jobId, string name, int shards);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Encode job {JobId}: another activation wrote the job's state; this one stops and the job resumes from storage")]
    private partial void LogLostOwnership(Exception error, string jobId);

    [LoggerMessage(Level = LogLevel.Error, Message = "Encode job {JobId} failed")]
    private partial void LogFailed(Exception error, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Encode job {JobId}: shard {Shard} failed (attempt {Attempt})")]
    private partial void LogShardFailed(Exception error, string jobId, string shard, int attempt);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Silo {Silo} did not answer; it gets no shards to encode")]
    private partial void LogSiloSkipped(Exception error, string silo);
}
