using System.Text.Json;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using RAE.Models.Training;
using RAE.Models.Verification;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Training;

/// <summary>
/// The generator step of <see cref="Stage1TrainingStep"/> run end to end on the adaptive_weight fixture: an encoder that
/// replays the fixture's latent stands for the frozen encoder (noise_tau 0), the linear stand-in discriminator, LPIPS from
/// lpips_vgg and the recorded DiffAug draws. Total loss, λ and every decoder gradient left by the step must match.
/// </summary>
public sealed class Stage1TrainingStepReferenceTests
{
    private sealed class ReplayEncoder(Tensor tokens) : IRepresentationEncoder
    {
        public int PatchSize => 4;
        public int HiddenSize => (int)tokens.shape[2];
        public IReadOnlyList<float> ImageMean { get; } = [0.485f, 0.456f, 0.406f];
        public IReadOnlyList<float> ImageStd { get; } = [0.229f, 0.224f, 0.225f];

        public Tensor Encode(Tensor images) => tokens.clone();
    }

    [Theory]
    [InlineData("base")]
    [InlineData("full")]
    public void GeneratorStepMatchesTheReferenceLossWeightAndGradients(string variant)
    {
        var caseDirectory = Fixtures.Case("adaptive_weight");
        using var document = JsonDocument.Parse(File.ReadAllText(Path.Combine(caseDirectory, "case.json")));
        var settings = document.RootElement.GetProperty("variants").GetProperty(variant);
        var useLpips = settings.GetProperty("use_lpips").GetBoolean();
        var io = SafeTensors.Load(Path.Combine(caseDirectory, "io.safetensors"));
        var grads = SafeTensors.Load(Path.Combine(caseDirectory, "grads.safetensors"));
        try
        {
            using var tokens = RepresentationAutoencoder.GridToTokens(io["z"]).contiguous();
            var decoderFile = new DecoderConfig(HiddenSize: 0, DecoderHiddenSize: 32, DecoderNumHiddenLayers: 2, DecoderNumAttentionHeads: 4,
                DecoderIntermediateSize: 64, PatchSize: 4, ImageSize: 16, LayerNormEps: 1e-12);
            using var rae = new RepresentationAutoencoder(new ReplayEncoder(tokens), decoderFile,
                new RaeOptions(EncoderInputSize: 16, DecoderPatchSize: 4, NoiseTau: 0));
            StrictWeightLoader.Load(rae.Decoder, Path.Combine(caseDirectory, "weights.safetensors"), "");
            using var lpips = useLpips ? LpipsCaseChecker.Load(ReferenceCase.Open(Fixtures.Case("lpips_vgg"))) : null;
            using var disc = nn.Linear(768, 4);
            using (no_grad())
            {
                disc.weight!.copy_(io["disc.weight"]);
                disc.bias!.copy_(io["disc.bias"]);
            }
            var losses = new Stage1LossSchedule(new GanLossConfig
            {
                DiscStart = 0, DiscUpdStart = 100, LpipsStart = 0, PerceptualWeight = useLpips ? 1.0 : 0.0, DiscWeight = 0.75, MaxDWeight = 1e4,
            }, stepsPerEpoch: 1);
            var augment = settings.GetProperty("diffaug");
            var draws = new RecordedUniformDraws(useLpips ? [io[$"{variant}.diffaug.draw0"], io[$"{variant}.diffaug.draw1"]] : []);
            var constant = new Stage1OptimizerSettings(new LearningRateSchedule(1e-4, 1e-4, 0, 10, DecayShape.Linear, false));
            using var step = new Stage1TrainingStep(rae, losses, constant,
                new DiffAug(augment.GetProperty("prob").GetDouble(), augment.GetProperty("cutout").GetDouble()), draws, lpips,
                new Stage1Discriminator(disc, x => disc.forward(x.flatten(1))), constant);

            var result = step.Run(io["images"]);

            Assert.True(result.UsedGan && !result.TrainedDiscriminator);
            Assert.Equal(draws.Count, draws.Used);
            AssertClose(io[$"{variant}.total_loss"].item<float>(), result.TotalLoss, "total_loss");
            AssertClose(io[$"{variant}.adaptive_weight"].item<float>(), result.AdaptiveWeight, "adaptive_weight");
            AssertClose(io[$"{variant}.gan_loss"].item<float>(), result.GanLoss, "gan_loss");
            var prefix = $"{variant}.grad.";
            var expected = grads.Where(pair => pair.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var largest = expected.Max(pair => pair.Value.abs().max().item<float>());
            var ours = rae.Decoder.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            Assert.Equal(40, expected.Count);
            foreach (var (key, reference) in expected)
            {
                using var difference = (ours[key[prefix.Length..]].grad! - reference).abs().max();
                Assert.True(difference.item<float>() <= 1e-5 * largest, $"{key}: max abs {difference.item<float>():g3}, largest gradient {largest:g3}");
            }
        }
        finally
        {
            foreach (var tensor in io.Values.Concat(grads.Values)) tensor.Dispose();
        }
    }

    private static void AssertClose(double expected, double actual, string name) =>
        Assert.True(Math.Abs(actual - expected) <= 1e-5 * Math.Abs(expected), $"{name}: ours {actual:R}, reference {expected:R}");
}
