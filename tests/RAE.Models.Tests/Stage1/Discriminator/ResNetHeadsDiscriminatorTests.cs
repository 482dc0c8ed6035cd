using RAE.Models.Stage1.Discriminator;
using RAE.Models.Stage1.Encoders;
using RAE.Models.Stage1.Losses;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Discriminator;

public sealed class ResNetHeadsDiscriminatorTests(ITestOutputHelper output)
{
    private const int InputSize = 64;

    private static ResNetHeadsDiscriminator Build(ulong seed)
    {
        using var generator = new Generator(seed);
        return ResNetHeadsDiscriminator.Create(new ResNetHeadsDiscriminatorOptions(InputSize), generator);
    }

    [Fact]
    public void HeadsReadTheFourResNetStagesAndOnlyTheyAreInTheStateDict()
    {
        using var discriminator = Build(1);
        var state = discriminator.state_dict();
        Assert.All(state.Keys, key => Assert.StartsWith("heads.", key));
        Assert.Equal(new long[] { 64, 64, 1 }, state["heads.0.0.0.weight_orig"].shape);
        Assert.Equal(new long[] { 512, 512, 9 }, state["heads.3.1.fn.0.weight_orig"].shape);
        Assert.Equal(new long[] { 1, 512, 1 }, state["heads.3.2.weight_orig"].shape);
        Assert.False(state.ContainsKey("heads.4.2.bias"));

        discriminator.SetTraining(false);
        using var images = rand(2, 3, 48, 48).mul_(2).sub_(1).requires_grad_();
        using var logits = discriminator.Classify(images);
        // 64² input: layer1..layer4 grids 16², 8², 4², 2².
        Assert.Equal(new long[] { 2, 256 + 64 + 16 + 4 }, logits.shape);
        using var loss = -logits.mean();
        loss.backward();
        Assert.True(images.grad!.abs().sum().item<float>() > 0, "the generator step needs gradients through the frozen ResNet");
    }

    [Fact]
    public void TooSmallAnInputForTheCircularKernelIsAClearError()
    {
        using var encoder = ResNet18Encoder.Load();
        var error = Assert.Throws<ArgumentException>(() => new ResNetHeadsDiscriminator(encoder, new ResNetHeadsDiscriminatorOptions(32)));
        Assert.Contains("ks 9", error.Message);
    }

    [Fact]
    public void HingeTrainingLowersTheLossOnAFixedSmallBatch()
    {
        using var discriminator = Build(2);
        using var generator = new Generator(3);
        using var real = SmoothImages(2, generator);
        using var fake = rand(new long[] { 2, 3, InputSize, InputSize }, generator: generator).mul_(2).sub_(1);
        using var optimizer = optim.AdamW(discriminator.TrainableParameters(), lr: 1e-2, beta1: 0.9, beta2: 0.95, weight_decay: 0);
        discriminator.SetTraining(true);

        (float Loss, float Accuracy) Step(bool update)
        {
            using var scope = NewDisposeScope();
            optimizer.zero_grad();
            var (logitsFake, logitsReal) = discriminator.Forward(fake, real);
            var loss = GanLosses.HingeDiscriminatorLoss(logitsReal!, logitsFake);
            if (update)
            {
                loss.backward();
                optimizer.step();
            }
            return (loss.item<float>(), GanLosses.Accuracy(logitsReal!, logitsFake).item<float>());
        }

        var first = Step(update: true);
        for (var i = 0; i < 19; i++) Step(update: true);
        var last = Step(update: false);
        output.WriteLine($"hinge loss {first.Loss:F4} -> {last.Loss:F4}, accuracy {first.Accuracy:F3} -> {last.Accuracy:F3}");
        Assert.True(last.Loss < 0.6 * first.Loss, $"hinge loss fell only from {first.Loss} to {last.Loss}");
        Assert.True(last.Accuracy > 0.85f, $"accuracy {last.Accuracy}");
    }

    /// <summary>Random low-frequency colour gradients in [-1, 1].</summary>
    private static Tensor SmoothImages(int count, Generator generator)
    {
        using var scope = NewDisposeScope();
        var coarse = rand(new long[] { count, 3, 4, 4 }, generator: generator).mul_(2).sub_(1);
        var smooth = nn.functional.interpolate(coarse, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: true);
        return smooth.MoveToOuterDisposeScope();
    }
}
