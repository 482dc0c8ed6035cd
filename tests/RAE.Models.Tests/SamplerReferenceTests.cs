using Xunit.Abstractions;
using RAE.Models.Verification;

namespace RAE.Models.Tests;

public sealed class SamplerReferenceTests(ITestOutputHelper output)
{
    [Fact]
    public void SamplerCaseMatchesEveryReferenceOutput()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("sampler"));
        var expected = new List<string> { "time_grid" };
        foreach (var run in new[] { "euler_noguidance", "euler_cfg", "heun2_noguidance", "heun2_cfg", "euler_autoguidance" })
            expected.AddRange(new[] { $"{run}.trajectory", $"{run}.final", $"{run}.samples", $"{run}.call_t" });
        TransportReferenceAssertions.AssertAllPass(results, expected.ToArray());
        Assert.Equal(expected.Count, results.Count);
        var worst = results.MaxBy(r => r.MaxRelativeError)!;
        output.WriteLine($"{results.Count} outputs, worst {worst.Name}: relative {worst.MaxRelativeError:g3}");
    }
}

public sealed class SamplerConsistencyTests(ITestOutputHelper output)
{
    [Fact]
    public void Dopri5AndFineRk4AgreeOnTheTinyDiTFlow()
    {
        // Every grid 1 − linspace(0, 0.999, N) ends at the same shifted time, so an adaptive dopri5 on 10 points and a
        // 3/8-rule RK4 on 20 points must reach the same final state (the exact ODE solution) up to their errors.
        var folder = Fixtures.Case("sampler");
        var referenceCase = ReferenceCase.Open(folder);
        var weights = RAE.Models.IO.SafeTensors.Load(Path.Combine(folder, "weights.safetensors"));
        var io = RAE.Models.IO.SafeTensors.Load(Path.Combine(folder, "io.safetensors"));
        try
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var guard = TorchSharp.torch.no_grad();
            using var model = new RAE.Models.Stage2.DiTwDDTHead(RAE.Models.Stage2.DiTwDDTHeadOptions.FromReferenceParams(referenceCase.Root.GetProperty("params")));
            RAE.Models.IO.StateDictLoading.LoadStrict(model, weights, "sampler/weights.safetensors");
            model.eval();
            var transport = RAE.Models.Transport.FlowTransport.Create(timeDistShift: Math.Sqrt(48));
            var calls = 0;
            RAE.Models.Transport.ModelFunction velocity = (x, t) => { calls++; return model.forward(x, t, io["y"]); };
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var adaptive = new RAE.Models.Sampling.OdeSampler(transport, "dopri5", 10, atol: 1e-6, rtol: 1e-3).Sample(io["z"], velocity)[-1];
            output.WriteLine($"dopri5: {calls} calls, {watch.ElapsedMilliseconds} ms");
            calls = 0;
            watch.Restart();
            var fine = new RAE.Models.Sampling.OdeSampler(transport, "rk4", 20).Sample(io["z"], velocity)[-1];
            output.WriteLine($"rk4: {calls} calls, {watch.ElapsedMilliseconds} ms");
            var coarseEuler = io["euler_noguidance.final"];
            var error = (adaptive - fine).abs().max().item<float>() / fine.abs().max().item<float>();
            var eulerError = (coarseEuler - fine).abs().max().item<float>() / fine.abs().max().item<float>();
            output.WriteLine($"dopri5 vs rk4 {error:g3}, 9-step Euler vs rk4 {eulerError:g3}");
            Assert.True(error < 5e-3, $"dopri5 vs rk4: {error:g3}");
            Assert.True(error < eulerError / 10, $"dopri5 ({error:g3}) must be far closer than 9-step Euler ({eulerError:g3})");
        }
        finally
        {
            foreach (var tensor in weights.Values.Concat(io.Values)) tensor.Dispose();
        }
    }
}
