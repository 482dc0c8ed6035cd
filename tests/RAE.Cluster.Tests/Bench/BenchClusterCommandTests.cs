using System.Text.Json;
using RAE.Client.Bench;
using RAE.Client.Commands;
using RAE.GrainInterfaces;

namespace RAE.Cluster.Tests.Bench;

public sealed class BenchClusterCommandTests
{
    [Fact]
    public async Task BenchClusterWithTinySizesReportsConsistentPositiveFiniteFigures()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var exitCode = await CommandLine.RunAsync(
            ["bench", "cluster", "--elements", "100000", "--steps", "3", "--collective", "ring,orleans", "--bucket-elements", "40000", "--chunk-elements", "30000", "--chunks-in-flight", "3", "--allreduce-repeats", "2",
             "--rounds", "1", "--input", "16", "--hidden", "32", "--dataset", "256", "--batch", "32", "--json"],
            output, error);
        Assert.True(exitCode == 0, error.ToString());
        using var report = JsonDocument.Parse(output.ToString());
        var root = report.RootElement;

        // --steps given, --warmup-steps left to tiny-mlp's default (enough steps to pass the first, uncompiled ones).
        var workload = root.GetProperty("Workload");
        Assert.Equal("tiny-mlp", workload.GetProperty("Name").GetString());
        Assert.Equal(3, workload.GetProperty("MeasuredStepsPerRun").GetInt32());
        Assert.Equal(10, workload.GetProperty("WarmupStepsPerRun").GetInt32());
        var rows = root.GetProperty("AllReduce").EnumerateArray().ToList();
        Assert.Equal(["Ring", "Ring/TLS", "Orleans"], rows.Select(r => r.GetProperty("Transport").GetString()));
        var ring = rows[0];
        Assert.Equal(40000, ring.GetProperty("ChunkElements").GetInt32()); // the ring's bucket
        Assert.Equal(0, ring.GetProperty("MaxAbsoluteError").GetDouble());
        Assert.Equal(2, ring.GetProperty("Silos").EnumerateArray().Select(s => s.GetString()).Distinct().Count());
        Assert.Equal(PositiveFinite(ring, "MegabytesPerSecond"), PositiveFinite(ring, "BusMegabytesPerSecond"), 1e-9); // 2(n-1)/n = 1 for two ranks
        var tlsRing = rows[1]; // the same ring with the cluster's mutual TLS on its connections
        Assert.Equal(0, tlsRing.GetProperty("MaxAbsoluteError").GetDouble());
        PositiveFinite(tlsRing, "MegabytesPerSecond");
        var allReduce = rows[2];
        Assert.Equal(100000, allReduce.GetProperty("Elements").GetInt32());
        Assert.Equal(400000, allReduce.GetProperty("BytesPerRank").GetInt64());
        Assert.Equal(30000, allReduce.GetProperty("ChunkElements").GetInt32());
        Assert.Equal(3, allReduce.GetProperty("ChunksInFlight").GetInt32());
        Assert.Equal(2, allReduce.GetProperty("Ranks").GetInt32());
        var silos = allReduce.GetProperty("Silos").EnumerateArray().Select(s => s.GetString()).ToList();
        Assert.Equal(2, silos.Distinct().Count()); // the two ranks ran in two different silos
        Assert.Equal(0, allReduce.GetProperty("MaxAbsoluteError").GetDouble()); // the probe's sums are exact
        var median = PositiveFinite(allReduce, "MedianSeconds");
        Assert.Equal(0.4 / median, PositiveFinite(allReduce, "MegabytesPerSecond"), 1e-6);
        Assert.True(PositiveFinite(allReduce, "BestMegabytesPerSecond") >= allReduce.GetProperty("MegabytesPerSecond").GetDouble());

        var noise = root.GetProperty("Noise");
        Assert.Equal(2, noise.GetProperty("Threads").GetInt32());
        Assert.InRange(Finite(noise, "LostFraction"), 0, 1);
        Assert.Equal(Finite(noise, "LostSeconds") / (2 * PositiveFinite(noise, "Seconds")), noise.GetProperty("LostFraction").GetDouble(), 1e-12);

        var twoByOne = root.GetProperty("TwoRanksOneThread");
        var oneByTwo = root.GetProperty("OneRankTwoThreads");
        Assert.Equal((2, 1), (twoByOne.GetProperty("Ranks").GetInt32(), twoByOne.GetProperty("ThreadsPerRank").GetInt32()));
        Assert.Equal((1, 2), (oneByTwo.GetProperty("Ranks").GetInt32(), oneByTwo.GetProperty("ThreadsPerRank").GetInt32()));
        foreach (var run in new[] { twoByOne, oneByTwo })
        {
            Assert.Equal(3, run.GetProperty("MeasuredSteps").GetInt32());
            var step = PositiveFinite(run, "StepSeconds");
            Assert.Equal(1 / step, PositiveFinite(run, "StepsPerSecond"), 1e-9);
            PositiveFinite(run, "ComputeSeconds");
            PositiveFinite(run, "UpdateSeconds");
            var overhead = Finite(run, "OverheadSeconds");
            Assert.Equal(Finite(run, "InsideStepOverheadSeconds") + Finite(run, "BetweenStepsSeconds"), overhead, 1e-9);
            Assert.Equal(overhead / step, Finite(run, "OverheadFraction"), 1e-9);
            Assert.True(double.IsFinite(run.GetProperty("FinalLoss").GetDouble()));
        }
        PositiveFinite(twoByOne, "AllReduceSeconds");

        var scaling = root.GetProperty("Scaling");
        Assert.Equal(twoByOne.GetProperty("StepsPerSecond").GetDouble() / oneByTwo.GetProperty("StepsPerSecond").GetDouble(), PositiveFinite(scaling, "Value"), 1e-9);
        Assert.Equal(scaling.GetProperty("Value").GetDouble() >= 0.9, scaling.GetProperty("Met").GetBoolean());
        var overheadCheck = root.GetProperty("CoordinationOverhead");
        Assert.Equal(twoByOne.GetProperty("OverheadFraction").GetDouble(), overheadCheck.GetProperty("Value").GetDouble());
        Assert.Equal(overheadCheck.GetProperty("Value").GetDouble() < 0.02, overheadCheck.GetProperty("Met").GetBoolean());
    }

    [Fact]
    public void StatisticsSplitTheLoopPeriodIntoWorkInStepOverheadAndTheGapBetweenSteps()
    {
        var start = DateTimeOffset.UnixEpoch;
        // Warm-up step 1 ends at 0 s; steps 2 and 3 end at 1.0 s and 2.2 s: a mean period of 1.1 s.
        IReadOnlyList<StepMetrics> run =
        [
            new() { Step = 1, StepSeconds = 5, CoordinationSeconds = 3, CompletedAt = start },
            new() { Step = 2, StepSeconds = 0.9, CoordinationSeconds = 0.05, ComputeSeconds = 0.5, AllReduceSeconds = 0.3, ApplySeconds = 0.05, Loss = 2, CompletedAt = start.AddSeconds(1.0) },
            new() { Step = 3, StepSeconds = 1.1, CoordinationSeconds = 0.15, ComputeSeconds = 0.6, AllReduceSeconds = 0.3, ApplySeconds = 0.05, Loss = 1, CompletedAt = start.AddSeconds(2.2) },
        ];
        var summary = TrainingStatistics.Summarize(2, 1, [run], warmupSteps: 1);
        Assert.Equal(2, summary.MeasuredSteps);
        Assert.Equal(1.1, summary.StepSeconds, 1e-12);
        Assert.Equal(1 / 1.1, summary.StepsPerSecond, 1e-12);
        Assert.Equal(0.55, summary.ComputeSeconds, 1e-12);
        Assert.Equal(0.1, summary.InsideStepOverheadSeconds, 1e-12);
        Assert.Equal(0.1, summary.BetweenStepsSeconds, 1e-12); // 1.1 s period - 1.0 s mean step call
        Assert.Equal(0.2 / 1.1, summary.OverheadFraction, 1e-12);
        Assert.Equal(1, summary.FinalLoss);
        Assert.Throws<InvalidOperationException>(() => TrainingStatistics.Summarize(2, 1, [run], warmupSteps: 3));
    }

    private static double Finite(JsonElement element, string name)
    {
        var value = element.GetProperty(name).GetDouble();
        Assert.True(double.IsFinite(value), $"{name} is {value}");
        return value;
    }

    private static double PositiveFinite(JsonElement element, string name)
    {
        var value = Finite(element, name);
        Assert.True(value > 0, $"{name} is {value}");
        return value;
    }
}
