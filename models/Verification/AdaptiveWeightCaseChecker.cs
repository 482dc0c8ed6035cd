using System.Text.Json;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'adaptive_weight' reference case: the Stage 1 generator step with the GAN branch on, per variant (base: no
/// LPIPS, no augmentation; full: LPIPS from the sibling lpips_vgg case and DiffAug with recorded draws), against a linear
/// stand-in discriminator: losses, both last-layer gradients and their norms, λ, the total loss, the clamped λ, and every
/// decoder gradient after the backward pass (compared on the scale of the variant's largest gradient, as the case says).
/// </summary>
public sealed class AdaptiveWeightCaseChecker : IReferenceCaseChecker
{
    public const string CaseName = "adaptive_weight";
    private const string LastLayer = "decoder_pred.weight";
    private static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    private static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    public bool CanCheck(ReferenceCase referenceCase) =>
        Stage1LossCases.IsCase(referenceCase, CaseName) && referenceCase.Has("io.safetensors") && referenceCase.Has("weights.safetensors");

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        var root = referenceCase.Root;
        var config = DecoderConfig.FromJson(HfConfig.Parse(root.GetProperty("config").GetRawText(), referenceCase.PathOf("case.json") + "#config"));
        var lossConfig = root.GetProperty("loss_config");
        var perceptualWeight = lossConfig.GetProperty("perceptual_weight").GetDouble();
        var discWeight = lossConfig.GetProperty("disc_weight").GetDouble();
        var maxDWeight = lossConfig.GetProperty("max_d_weight").GetDouble();

        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var grads = referenceCase.Has("grads.safetensors") ? new ReferenceTensorFile(referenceCase.PathOf("grads.safetensors")) : null;
        Lpips? lpips = null;
        try
        {
            var results = new List<OutputComparison>();
            foreach (var variant in root.GetProperty("variants").EnumerateObject())
            {
                if (!io.Has($"{variant.Name}.total_loss")) continue;
                var useLpips = variant.Value.GetProperty("use_lpips").GetBoolean();
                if (useLpips) lpips ??= LoadSiblingLpips(referenceCase);
                using var decoder = new GeneralDecoder(config);
                StrictWeightLoader.Load(decoder, referenceCase.PathOf("weights.safetensors"), "");
                var step = new GeneratorStepProbe(decoder, io, variant.Name, useLpips ? lpips : null, perceptualWeight, discWeight, maxDWeight, tolerance, results);
                step.Run(variant.Value, grads);
            }
            return results;
        }
        finally
        {
            lpips?.Dispose();
        }
    }

    private static Lpips LoadSiblingLpips(ReferenceCase referenceCase)
    {
        var lpipsCase = referenceCase.Root.GetProperty("lpips_weights").GetProperty("case").GetString()!;
        var directory = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(referenceCase.Directory.TrimEnd('/', '\\')))!, lpipsCase);
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"{referenceCase.Name}: its 'full' variant needs the LPIPS weights of the '{lpipsCase}' case, expected at {directory}");
        return LpipsCaseChecker.Load(ReferenceCase.Open(directory));
    }

    /// <summary>One variant of the generator step, executed statement by statement as the case lists them.</summary>
    private sealed class GeneratorStepProbe(GeneralDecoder decoder, ReferenceTensorFile io, string variant, Lpips? lpips, double perceptualWeight,
        double discWeight, double maxDWeight, double tolerance, List<OutputComparison> results)
    {
        private void Compare(string output, Tensor actual)
        {
            var name = $"{variant}.{output}";
            if (io.Has(name)) results.Add(OutputComparison.Compare(name, actual.numel() == 1 ? actual.reshape(1) : actual, io[name], tolerance));
        }

        public void Run(JsonElement settings, ReferenceTensorFile? grads)
        {
            using var scope = NewDisposeScope();
            foreach (var parameter in decoder.parameters()) parameter.requires_grad = true;
            decoder.train();
            var rae = RepresentationAutoencoder.ForDecoding(decoder, ImageNetMean, ImageNetStd, normalization: null);
            var images = io["images"];

            var recon = rae.Decode(io["z"]);
            var realNormed = images * 2.0 - 1.0;
            var reconNormed = recon * 2.0 - 1.0;
            var recLoss = (recon - images).abs().mean();
            var lpipsLoss = lpips is null ? zeros([], dtype: recLoss.dtype) : lpips.Loss(realNormed, reconNormed);
            var reconTotal = recLoss + perceptualWeight * lpipsLoss;
            var augment = settings.GetProperty("diffaug");
            var draws = DiffAugCaseChecker.RecordedDraws(settings.GetProperty("diffaug_draws"), io);
            var fakeAug = new DiffAug(augment.GetProperty("prob").GetDouble(), augment.GetProperty("cutout").GetDouble()).Apply(reconNormed, draws);
            if (draws.Used != draws.Count) throw new InvalidDataException($"{variant}: DiffAug used {draws.Used} of the {draws.Count} recorded draws");
            var logitsFake = nn.functional.linear(fakeAug.flatten(1), io["disc.weight"], io["disc.bias"]);
            var ganLoss = GanLosses.VanillaGeneratorLoss(logitsFake);

            var lastLayer = decoder.named_parameters().Single(p => p.name == LastLayer).parameter;
            using var adaptive = AdaptiveWeight.Compute(reconTotal, ganLoss, lastLayer, maxDWeight);
            var totalLoss = reconTotal + (discWeight * adaptive.Weight) * ganLoss;

            Compare("recon", recon);
            Compare("recon_normed", reconNormed);
            Compare("rec_loss", recLoss);
            Compare("lpips_loss", lpipsLoss);
            Compare("recon_total", reconTotal);
            Compare("fake_aug", fakeAug);
            Compare("logits_fake", logitsFake);
            Compare("gan_loss", ganLoss);
            Compare("recon_grads", adaptive.ReconstructionGradient);
            Compare("gan_grads", adaptive.GanGradient);
            Compare("recon_grad_norm", adaptive.ReconstructionGradient.norm());
            Compare("gan_grad_norm", adaptive.GanGradient.norm());
            Compare("adaptive_weight", adaptive.Weight);
            Compare("total_loss", totalLoss);

            if (io.Has($"{variant}.clamped.max_d_weight"))
            {
                var clampedMax = io[$"{variant}.clamped.max_d_weight"].item<float>();
                using var clamped = AdaptiveWeight.Compute(reconTotal, ganLoss, lastLayer, clampedMax);
                Compare("clamped.adaptive_weight", clamped.Weight);
                Compare("clamped.total_loss", reconTotal + (discWeight * clamped.Weight) * ganLoss);
            }

            totalLoss.backward();
            if (grads is null) return;
            var prefix = $"{variant}.grad.";
            var expected = grads.Tensors.Where(pair => pair.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            if (expected.Count == 0) return;
            var largest = expected.Max(pair => pair.Value.abs().max().item<float>());
            var ours = decoder.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (key, reference) in expected)
            {
                var name = key[prefix.Length..];
                var gradient = ours.TryGetValue(name, out var parameter) ? parameter.grad
                    : throw new InvalidDataException($"{variant}: the reference has a gradient for '{name}', which the decoder lacks");
                if (gradient is null) throw new InvalidDataException($"{variant}: '{name}' got no gradient");
                results.Add(Stage1LossCases.CompareOnScale(key, gradient, reference, largest, tolerance));
            }
        }
    }

}
