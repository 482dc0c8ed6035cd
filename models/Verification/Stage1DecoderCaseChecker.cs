using System.Text.Json;
using RAE.Models.IO;
using RAE.Models.Stage1;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks <c>stage1.decoders.decoder.GeneralDecoder</c> cases: builds the decoder from case.json "config", loads
/// weights.safetensors strictly, and compares <c>logits</c> (decoder(tokens)), <c>pixels</c> (unpatchify),
/// <c>rae_decode</c> (RAE.decode(z) with latent_mean/latent_var) and <c>rae_decode_no_normalization</c>.
/// </summary>
public sealed class Stage1DecoderCaseChecker : IReferenceCaseChecker
{
    public const string ModelName = "stage1.decoders.decoder.GeneralDecoder";

    public bool CanCheck(ReferenceCase referenceCase) => referenceCase.Model == ModelName;

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        if (!referenceCase.Root.TryGetProperty("config", out var configJson) || configJson.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"{referenceCase.PathOf("case.json")}: no 'config' object");
        var config = DecoderConfig.FromJson(HfConfig.Parse(configJson.GetRawText(), referenceCase.PathOf("case.json") + "#config"));

        using var decoder = new GeneralDecoder(config);
        StrictWeightLoader.Load(decoder, referenceCase.PathOf("weights.safetensors"), "");
        decoder.eval();

        var io = SafeTensors.Load(referenceCase.PathOf("io.safetensors"));
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var results = new List<OutputComparison>();
            Tensor Input(string name) => io.TryGetValue(name, out var t) ? t
                : throw new InvalidDataException($"{referenceCase.PathOf("io.safetensors")}: input '{name}' is missing");

            if (io.ContainsKey("logits") || io.ContainsKey("pixels"))
            {
                var logits = decoder.forward(Input("tokens"));
                if (io.TryGetValue("logits", out var expectedLogits))
                    results.Add(OutputComparison.Compare("logits", logits, expectedLogits, tolerance));
                if (io.TryGetValue("pixels", out var expectedPixels))
                    results.Add(OutputComparison.Compare("pixels", decoder.unpatchify(logits), expectedPixels, tolerance));
            }

            // The RAE wrappers share the decoder and are not disposed here: disposing a module disposes its submodules.
            var (mean, std) = EncoderImageStatistics(referenceCase);
            var eps = referenceCase.Root.TryGetProperty("rae_decode", out var raeJson) && raeJson.TryGetProperty("eps", out var epsJson)
                ? epsJson.GetDouble() : 1e-5;
            if (io.TryGetValue("rae_decode", out var expectedDecode))
            {
                using var normalization = new LatentNormalization(Input("latent_mean"), Input("latent_var"), eps);
                var rae = RepresentationAutoencoder.ForDecoding(decoder, mean, std, normalization);
                results.Add(OutputComparison.Compare("rae_decode", rae.Decode(Input("z")), expectedDecode, tolerance));
            }
            if (io.TryGetValue("rae_decode_no_normalization", out var expectedRaw))
            {
                var rae = RepresentationAutoencoder.ForDecoding(decoder, mean, std, normalization: null);
                results.Add(OutputComparison.Compare("rae_decode_no_normalization", rae.Decode(Input("z")), expectedRaw, tolerance));
            }
            return results;
        }
        finally
        {
            foreach (var tensor in io.Values) tensor.Dispose();
        }
    }

    private static (float[] Mean, float[] Std) EncoderImageStatistics(ReferenceCase referenceCase)
    {
        float[] Read(string name, float[] fallback) =>
            referenceCase.Root.TryGetProperty("rae_decode", out var rae) && rae.TryGetProperty(name, out var values)
                ? values.EnumerateArray().Select(v => (float)v.GetDouble()).ToArray()
                : fallback;
        return (Read("encoder_mean", [0.485f, 0.456f, 0.406f]), Read("encoder_std", [0.229f, 0.224f, 0.225f]));
    }
}
