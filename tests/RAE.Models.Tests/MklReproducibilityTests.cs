using RAE.Models.Runtime;
using RAE.Models.Stage1.Encoders;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

/// <summary>
/// The suite runs as the silo and the CLI do, with MKL's strict reproducibility on (<see cref="TorchRuntime"/>): the
/// ResNet18 encoder's bits do not depend on the intra-op thread count. Without it, on this AMD host with MKL's fast
/// path, a batch-1 encode differs between 1 and 2 threads (166 of 2,048 values at layer 4;
/// <c>RAE_MKL_STRICT_CNR=0 dotnet test --filter MklReproducibilityTests</c> fails so).
/// </summary>
public sealed class MklReproducibilityTests
{
    [Fact]
    public void StrictReproducibilityIsOnUnlessTurnedOff()
    {
        var result = MklReproducibility.Apply();
        if (Environment.GetEnvironmentVariable(MklReproducibility.OptOutVariable) is "0")
        {
            Assert.False(result.Strict);
            Assert.Contains($"{MklReproducibility.OptOutVariable}=0", result.Description);
            return;
        }
        Assert.True(result.Strict, result.Description);
        Assert.Same(result, MklReproducibility.Apply());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void AResNet18EncodeHasTheSameBitsOnOneTwoAndFourThreads(int batch)
    {
        using var encoder = ResNet18Encoder.Load(new ResNet18EncoderOptions(Stage: ResNetStage.Layer4));
        using var generator = new Generator(17, CPU);
        using var images = rand([batch, 3, 64, 64], generator: generator);
        var one = EncodeOn(encoder, images, threads: 1);
        foreach (var threads in new[] { 2, 4 })
        {
            var other = EncodeOn(encoder, images, threads);
            var differing = one.Zip(other).Count(pair => BitConverter.SingleToInt32Bits(pair.First) != BitConverter.SingleToInt32Bits(pair.Second));
            Assert.True(differing == 0, $"batch {batch}: {differing} of {one.Length} encoded values differ between 1 and {threads} threads");
        }
    }

    /// <summary>The encode on a fresh thread that computes with <paramref name="threads"/> intra-op threads.</summary>
    private static float[] EncodeOn(ResNet18Encoder encoder, Tensor images, int threads)
    {
        float[] values = [];
        Exception? failure = null;
        var thread = new Thread(() =>
        {
            try
            {
                set_num_threads(threads);
                using var tokens = encoder.Encode(images);
                values = tokens.contiguous().data<float>().ToArray();
            }
            catch (Exception error)
            {
                failure = error;
            }
        });
        thread.Start();
        thread.Join();
        return failure is null ? values : throw new InvalidOperationException($"the encode on {threads} threads failed", failure);
    }
}
