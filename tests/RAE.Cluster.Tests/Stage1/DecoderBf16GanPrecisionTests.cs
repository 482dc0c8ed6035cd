using RAE.Grains.Workers.Stage1;
using Xunit.Abstractions;
using static RAE.Cluster.Tests.Stage1.DecoderTestJobs;

namespace RAE.Cluster.Tests.Stage1;

/// <summary>
/// training.precision: bf16 with the whole Stage 1 loss on (L1, perceptual, GAN with λ, two discriminator updates) against
/// fp32, step by step. As under the reference's torch.autocast, the decoder's matmuls run in bf16, so the gradients of
/// <c>decoder_pred.weight</c> that λ measures are fp32 tensors holding a bf16 GEMM's values; λ is then taken in fp32 from
/// them (outside autocast, spec §4.4 step 6), and the losses, the perceptual network and the discriminator stay fp32.
/// Measured on the tiny job (3 steps): on the same weights, bf16 moves L1, perceptual, GAN and discriminator losses by at most
/// 1.4e-4 relative and the logit means by about 1e-3 absolute; its last-layer gradients differ from fp32's elementwise by 5 % (reconstruction:
/// pixels near their target flip the sign of the L1 gradient) and 24 % (GAN: the sum over tokens nearly cancels) of their
/// norms, yet the norms agree within 1 %, the noise adding in quadrature, so λ moves by at most 1.4 % and the total loss by
/// 0.7 %. Run freely, the two runs drift apart a little more from step 2 on (AdamW's first update, about lr·sign(g), turns the
/// gradient noise on near-zero entries into weight differences): λ within 1.2 %, every loss within 0.7 %. (A 4 % total-loss gap
/// at step 2 was noted in an earlier session on another configuration; nothing of λ is computed in bf16, and this job does not
/// reproduce it.) Tolerances below: about twice the measured worst case.
/// </summary>
public sealed class DecoderBf16GanPrecisionTests : IDisposable
{
    private const int Steps = 3;
    private const string Bf16 = "training.precision=bf16";
    private static readonly string[] Losses = ["rec_loss", "lpips_loss", "gan_loss", "disc_loss"];

    private readonly ITestOutputHelper _output;
    private readonly string _root = NewBlobRoot();
    private readonly Grains.Storage.FileSystemBlobStore _store;

    public DecoderBf16GanPrecisionTests(ITestOutputHelper output)
    {
        _output = output;
        _store = StoreWithDataset(_root);
    }

    [Fact]
    public void Bf16LambdaAndEveryLossTermStayWithinStatedTolerancesOfFp32()
    {
        var fp32 = CreateWorkers(Spec(ranks: 1, steps: Steps), _store)[0];
        var onFp32Weights = CreateWorkers(Spec(ranks: 1, steps: Steps, Bf16), _store)[0];
        var free = CreateWorkers(Spec(ranks: 1, steps: Steps, Bf16), _store)[0];
        try
        {
            var lambdaMoved = false;
            for (long step = 1; step <= Steps; step++)
            {
                onFp32Weights.SetParameters(fp32.GetParameters());
                var (reference, referencePair) = StepOf(fp32, step);
                var (same, samePair) = StepOf(onFp32Weights, step);
                var (drifted, _) = StepOf(free, step);

                // λ is the fp32 formula on the fp32 gradients the phase delivered (a bf16 norm would be ~1e-3 off); two fp32
                // norms of one vector summed in different orders differ by ~1e-6 (1.3e-6 measured on an AVX2-only host).
                Assert.Equal(Lambda(samePair), same["lambda"], Math.Abs(Lambda(samePair)) * 1e-5);
                Assert.Equal(Lambda(referencePair), reference["lambda"], Math.Abs(Lambda(referencePair)) * 1e-5);
                var (reconstruction, gan) = (NormOf(samePair, 0), NormOf(samePair, 1));
                var (reconstructionFp32, ganFp32) = (NormOf(referencePair, 0), NormOf(referencePair, 1));
                _output.WriteLine($"step {step}: last-layer gradient norms fp32 {reconstructionFp32:E4} / {ganFp32:E4}, bf16 {reconstruction:E4} / {gan:E4}; "
                    + $"elementwise difference {DifferenceNorm(samePair, referencePair, 0) / reconstructionFp32:P1} / {DifferenceNorm(samePair, referencePair, 1) / ganFp32:P1} of the fp32 norm");
                // The GAN gradient of a random discriminator is noise-like (its elementwise bf16-vs-fp32 difference is
                // 29-33% of its norm on an AVX2-only host), so its norm moves more than the reconstruction's: measured
                // within 1.4% on the AVX-512 host, 3.9% (emulated bf16 GEMM) and 4.9% (libtorch's) on a Zen 3 host.
                Assert.True(Relative(reconstructionFp32, reconstruction) < 0.02 && Relative(ganFp32, gan) < 0.08,
                    $"step {step}: the bf16 last-layer gradient norms are more than 2 % / 8 % off fp32's");

                foreach (var key in Losses)
                {
                    Report(step, key, reference, same, drifted);
                    Within(step, key, reference, same, 1e-3, "on the same weights");
                    Within(step, key, reference, drifted, 0.03, "running freely");
                }
                foreach (var key in new[] { "logits_real", "logits_fake" })
                {
                    Report(step, key, reference, same, drifted);
                    Assert.True(Math.Abs(reference[key] - same[key]) < 5e-3, $"step {step} {key}: bf16 {same[key]} vs fp32 {reference[key]} on the same weights");
                    Assert.True(Math.Abs(reference[key] - drifted[key]) < 2e-2, $"step {step} {key}: bf16 {drifted[key]} vs fp32 {reference[key]} running freely");
                }
                Report(step, "lambda", reference, same, drifted);
                // λ divides by that GAN norm: measured within 1.4% on the AVX-512 host; on a Zen 3 host 3.5% (emulated) and
                // 6.0% / 8.2% (libtorch's bf16 GEMM, same weights / freely).
                Within(step, "lambda", reference, same, 0.08, "on the same weights");
                Within(step, "lambda", reference, drifted, 0.10, "running freely");
                Report(step, "total_loss", reference, same, drifted);
                Within(step, "total_loss", reference, same, 0.02, "on the same weights");
                Within(step, "total_loss", reference, drifted, 0.03, "running freely");
                lambdaMoved |= same["lambda"] != reference["lambda"];
            }
            Assert.True(lambdaMoved, "bf16 gave exactly fp32's λ at every step: the decoder did not run in bf16");
        }
        finally
        {
            fp32.Dispose();
            onFp32Weights.Dispose();
            free.Dispose();
        }
    }

    /// <summary>One step of one worker: its reported values and the phase-1 mean (the last-layer gradient pair λ is taken from).</summary>
    private static (Dictionary<string, double> Details, float[] LastLayerPair) StepOf(DecoderRankWorker worker, long step)
    {
        var means = new List<float[]>();
        var details = Advance([worker], step, step, means)[0].Details;
        Assert.True(details.ContainsKey("lambda") && details.ContainsKey("disc_loss"), "the GAN branch and the discriminator should train from step 1");
        return (details, means[0]);
    }

    private static double NormOf(float[] pair, int half) =>
        Math.Sqrt(pair.Skip(half * pair.Length / 2).Take(pair.Length / 2).Sum(v => (double)v * v));

    private static double DifferenceNorm(float[] a, float[] b, int half) =>
        Math.Sqrt(Enumerable.Range(half * a.Length / 2, a.Length / 2).Sum(i => ((double)a[i] - b[i]) * ((double)a[i] - b[i])));

    // Spec §4.4 step 6 with the step's max_d_weight (1e4) far away.
    private static double Lambda(float[] pair) => NormOf(pair, 0) / (NormOf(pair, 1) + 1e-6);

    private static double Relative(double reference, double value) => Math.Abs(value - reference) / Math.Abs(reference);

    private void Report(long step, string key, Dictionary<string, double> reference, Dictionary<string, double> same, Dictionary<string, double> drifted) =>
        _output.WriteLine($"step {step} {key}: fp32 {reference[key]:G6}; bf16 on the same weights {same[key]:G6} ({Relative(reference[key], same[key]):E2} relative), "
            + $"running freely {drifted[key]:G6} ({Relative(reference[key], drifted[key]):E2})");

    private static void Within(long step, string key, Dictionary<string, double> reference, Dictionary<string, double> bf16, double tolerance, string how) =>
        Assert.True(Relative(reference[key], bf16[key]) < tolerance,
            $"step {step} {key}: bf16 {bf16[key]} is {Relative(reference[key], bf16[key]):P2} off fp32 {reference[key]} {how} (tolerance {tolerance:P1})");

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }
}
