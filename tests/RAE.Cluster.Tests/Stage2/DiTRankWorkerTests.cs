using RAE.GrainInterfaces;
using RAE.Grains.Workers;
using RAE.Grains.Workers.Stage2;
using RAE.Models.IO;
using RAE.Models.Stage2;
using static RAE.Cluster.Tests.Stage2.DiTTestJobs;

namespace RAE.Cluster.Tests.Stage2;

/// <summary>The DiT^DH rank worker without Orleans: data parallelism, accumulation, determinism and exact resume.</summary>
public sealed class DiTRankWorkerTests
{
    private const int Steps = 4;

    [Fact]
    public void TwoRanksWithBatchBGiveTheParametersOfOneRankWithBatchTwoB()
    {
        var initial = Train(Spec(ranks: 1), 0).Parameters;
        var oneRank = Train(Spec(ranks: 1), Steps);
        var twoRanks = Train(Spec(ranks: 2), Steps);

        Assert.True(RelativeDifference(initial, oneRank.Parameters) > 1e-3, "training must move the parameters, or the comparison proves nothing");
        var difference = RelativeDifference(oneRank.Parameters, twoRanks.Parameters);
        Assert.True(difference < 1e-5, $"2 ranks x 4 differ from 1 rank x 8 by {difference:E2} relative");
        for (var step = 0; step < Steps; step++) Assert.Equal(oneRank.Losses[step], twoRanks.Losses[step], 4);
    }

    [Fact]
    public void AccumulatingTwoHalfBatchesGivesTheParametersOfOneFullBatch()
    {
        var whole = Train(Spec(ranks: 1), Steps);
        var accumulated = Train(Spec(ranks: 1, accumulation: 2), Steps);
        var twoRanksAccumulated = Train(Spec(ranks: 2, accumulation: 2), Steps);

        var difference = RelativeDifference(whole.Parameters, accumulated.Parameters);
        Assert.True(difference < 1e-5, $"1 rank x 2 micro-batches of 4 differ from 1 rank x 8 by {difference:E2} relative");
        var both = RelativeDifference(whole.Parameters, twoRanksAccumulated.Parameters);
        Assert.True(both < 1e-5, $"2 ranks x 2 micro-batches of 2 differ from 1 rank x 8 by {both:E2} relative");
    }

    [Fact]
    public void SameJobTwiceGivesTheSameLossCurveAndParameters()
    {
        var first = Train(Spec(ranks: 2), Steps);
        var second = Train(Spec(ranks: 2), Steps);
        Assert.Equal(first.Losses, second.Losses);
        Assert.Equal(first.Parameters, second.Parameters);
        Assert.All(first.Losses, loss => Assert.True(double.IsFinite(loss) && loss > 0));

        var otherSeed = Train(Spec(ranks: 2, overrides: "training.global_seed=8") with { Seed = 8 }, Steps);
        Assert.NotEqual(first.Losses, otherSeed.Losses);
    }

    [Fact]
    public void ResumingFromAMidRunStateContinuesExactlyLikeAnUninterruptedRun()
    {
        var spec = Spec(ranks: 2, accumulation: 2);
        var uninterrupted = Train(spec, 2 * Steps);

        byte[] state;
        List<double> before;
        var workers = CreateWorkers(spec);
        try
        {
            before = Advance(workers, 1, Steps);
            state = workers[0].GetState();
        }
        finally
        {
            foreach (var worker in workers) worker.Dispose();
        }

        // A re-formed group: fresh replicas (other seeds would give other weights) restored from rank 0's state.
        var resumed = CreateWorkers(spec);
        try
        {
            foreach (var worker in resumed) worker.LoadState(state);
            Assert.All(resumed, worker => Assert.Equal(Steps, worker.Step));
            var after = Advance(resumed, Steps + 1, 2 * Steps);
            Assert.Equal(uninterrupted.Losses, before.Concat(after));
            Assert.Equal(uninterrupted.Parameters, resumed[0].GetParameters());
            Assert.Equal(uninterrupted.State, resumed[0].GetState());
        }
        finally
        {
            foreach (var worker in resumed) worker.Dispose();
        }
    }

    [Fact]
    public void StateUsesReferenceKeysForModelAndEmaAndRecordsTheStep()
    {
        var run = Train(Spec(ranks: 1), 2);
        var tensors = SafeTensors.Load(new MemoryStream(run.State), "state");
        try
        {
            using var reference = new DiTwDDTHead(DiTJobConfig.FromSpec(Spec(ranks: 1)).Model);
            var referenceKeys = reference.state_dict().Keys.ToHashSet();
            Assert.Equal(referenceKeys, tensors.Keys.Where(k => k.StartsWith("model.", StringComparison.Ordinal)).Select(k => k["model.".Length..]).ToHashSet());
            Assert.Equal(referenceKeys, tensors.Keys.Where(k => k.StartsWith("ema.", StringComparison.Ordinal)).Select(k => k["ema.".Length..]).ToHashSet());
            Assert.Contains("model.blocks.0.attn.qkv.weight", tensors.Keys);
            Assert.Contains("ema.final_layer.linear.weight", tensors.Keys);
            Assert.Contains("ema.y_embedder.embedding_table.weight", tensors.Keys);
            Assert.Contains("optimizer.exp_avg.blocks.1.mlp.w12.weight", tensors.Keys);
            Assert.Equal(2L, tensors["trainer.step"].item<long>());
            Assert.Equal(2L, tensors["optimizer.step"].item<long>());
            Assert.Equal(16L, tensors["data.position"].item<long>());
            // EMA (decay 0.9) trails the model after two updates: present, and different.
            Assert.False(tensors["ema.final_layer.linear.weight"].eq(tensors["model.final_layer.linear.weight"]).all().item<bool>());
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void JobWithoutAConfigurationIsRejectedWithTheFieldNamed()
    {
        using var worker = new DiTRankWorker();
        var spec = new TrainingJobSpec { Workload = DiTRankWorker.WorkloadName, GlobalBatchSize = 8 };
        var error = Assert.Throws<ArgumentException>(() => worker.Initialize(new RankWorkerContext(spec, 0, 1, "cpu", 1)));
        Assert.Contains("TrainingJobSpec.Config", error.Message);
    }
}
