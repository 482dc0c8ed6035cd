using System.Diagnostics;
using System.Text.Json;
using RAE.Models.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed record ScalarRaceResult(string Outcome, long Iterations, int Failures, string? FirstFailure, long Freed);

/// <summary>
/// TorchSharp 0.107.0 frees a native scalar from the managed finalizer while libtorch may still read it (see
/// <see cref="DeferredScalarRelease"/>). A child process adds two tensors (TorchSharp passes an implicit <c>alpha = 1</c>)
/// while another thread forces collections: without the fix the race shows; with it, never.
/// </summary>
public sealed class DeferredScalarReleaseTests
{
    private const int FixedIterations = 4000;
    private static readonly TimeSpan UntilFirstFailureLimit = TimeSpan.FromSeconds(60);

    [Fact]
    public void TheSuiteRunsWithScalarReleaseDeferredAndReleasedScalarsAreFreedAfterTheGrace()
    {
        var result = DeferredScalarRelease.Apply();
        if (Environment.GetEnvironmentVariable(DeferredScalarRelease.OptOutVariable) is "0")
        {
            Assert.Equal(DeferredScalarReleaseOutcome.DisabledByEnvironment, result.Outcome);
            return;
        }
        Assert.True(result.Enabled, result.Description);
        var before = DeferredScalarRelease.Counts.Released;
        using (var scalar = 2.5.ToScalar())
        using (var x = ones(3))
        using (var y = x.mul(scalar))
            Assert.Equal(2.5f, y[0].item<float>());
        Assert.True(DeferredScalarRelease.Counts.Released > before, "disposing a scalar did not reach the deferred release");
    }

    [Fact]
    public void WithoutTheFixTheFinalizerRaceCorruptsAnAdditionAndWithItNever()
    {
        var withoutFix = RunChild(fix: false);
        Assert.Equal(nameof(DeferredScalarReleaseOutcome.DisabledByEnvironment), withoutFix.Outcome);
        Assert.True(withoutFix.Failures > 0,
            $"the race did not show without the fix in {withoutFix.Iterations} additions ({UntilFirstFailureLimit.TotalSeconds:0} s): {JsonSerializer.Serialize(withoutFix)}");

        var withFix = RunChild(fix: true);
        Assert.Equal(nameof(DeferredScalarReleaseOutcome.Enabled), withFix.Outcome);
        Assert.True(withFix.Failures == 0, $"with the fix: {withFix.Failures} of {withFix.Iterations} additions failed, first: {withFix.FirstFailure}");
        Assert.Equal(FixedIterations, withFix.Iterations);
        // Each addition releases one implicit scalar once it is finalized; the collector thread finalizes nearly all of them.
        Assert.True(withFix.Freed > FixedIterations / 2, $"only {withFix.Freed} native scalars were freed after the grace, from {FixedIterations} additions");
    }

    private static ScalarRaceResult RunChild(bool fix) => JsonSerializer.Deserialize<ScalarRaceResult>(ProbeProgram.Run(
        new Dictionary<string, string> { [DeferredScalarRelease.OptOutVariable] = fix ? "1" : "0" },
        "--scalar-race", fix ? "fixed" : "until-first-error"))!;

    /// <summary>
    /// Adds a tensor to itself while a second thread collects garbage and runs finalizers without pause; checks each sum.
    /// Stops at the first failure (or after a time limit) when <paramref name="untilFirstFailure"/>, else after a fixed count.
    /// </summary>
    internal static ScalarRaceResult Race(bool untilFirstFailure)
    {
        var outcome = DeferredScalarRelease.Apply().Outcome.ToString();
        using var values = arange(4096, dtype: float64);
        using var expected = values * 2;
        var stop = 0;
        var collector = new Thread(() =>
        {
            while (Volatile.Read(ref stop) == 0)
            {
                GC.Collect();
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true };
        collector.Start();
        long iterations = 0;
        var failures = 0;
        string? first = null;
        var clock = Stopwatch.StartNew();
        while (untilFirstFailure ? failures == 0 && clock.Elapsed < UntilFirstFailureLimit : iterations < FixedIterations)
        {
            try
            {
                using var sum = values + values;
                if (!sum.allclose(expected, rtol: 0, atol: 0)) throw new InvalidOperationException("the sum differs from 2x");
            }
            catch (Exception error)
            {
                failures++;
                first ??= error.Message.Split('\n')[0];
            }
            iterations++;
        }
        Volatile.Write(ref stop, 1);
        collector.Join();
        if (!untilFirstFailure)
        {
            // Past the grace, the next release frees every scalar that waited: the deferred path really frees memory.
            Thread.Sleep(DeferredScalarRelease.Grace + TimeSpan.FromSeconds(1));
            using var last = 1.0.ToScalar();
        }
        return new ScalarRaceResult(outcome, iterations, failures, first, DeferredScalarRelease.Counts.Freed);
    }
}
