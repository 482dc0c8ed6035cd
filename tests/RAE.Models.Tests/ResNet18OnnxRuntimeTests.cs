using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using RAE.Models.Stage1.Encoders;
using RAE.Models.Verification;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Tensor = TorchSharp.torch.Tensor;

namespace RAE.Models.Tests;

/// <summary>
/// The TorchSharp port against ONNX Runtime running the very same ResNet18.onnx (and ResNetPreprocess.onnx). The stage
/// outputs are intermediate values of the graph, so the ONNX Runtime session runs a copy of the model whose graph also
/// lists them as outputs. The graph's input is fixed at [1, 3, 224, 224], so ONNX Runtime sees one image at a time.
/// </summary>
public sealed class ResNet18OnnxRuntimeTests(ResNet18EncoderFixture fixture, ITestOutputHelper output)
    : IClassFixture<ResNet18EncoderFixture>
{
    // fp32 throughout; ONNX Runtime fuses Conv+BatchNormalization and sums in another order. Measured: about 1.5e-6.
    private const double Tolerance = 1e-5;

    [Fact]
    public void Backbone_MatchesOnnxRuntimeAtEveryStageAndAtTheFeaturizerOutput()
    {
        using var scope = NewDisposeScope();
        var encoder = fixture.Encoder;
        using var images = ResNet18EncoderFixture.RandomImages(2, 224, 224, seed: 1);
        var backboneInput = encoder.ToBackboneInput(fixture.Normalise(images));
        var stages = encoder.ForwardStages(backboneInput);
        var ours = new Dictionary<string, Tensor>();
        for (var i = 0; i < stages.Count; i++) ours[encoder.Layout.Stages[i].OutputName] = stages[i];
        ours[encoder.Layout.FinalPool!.OutputName] = encoder.FeaturizerPool(stages[^1]);
        var stageNames = encoder.Layout.Stages.Select(s => s.OutputName).ToList();
        using var session = new InferenceSession(
            OnnxTestModels.WithGraphEdits(File.ReadAllBytes(ResNet18EncoderOptions.DefaultModelPath), stageNames));

        for (var b = 0; b < 2; b++)
        {
            var reference = Run(session, encoder.Layout.InputName, backboneInput[b..(b + 1)], ours.Keys);
            foreach (var (name, value) in ours) AssertClose($"image {b} {name}", value[b..(b + 1)], reference[name]);
        }
    }

    /// <summary>
    /// The port is not tied to 224: at 256x256 (the RAE image size) the graph, re-declared with that input size
    /// (ONNX Runtime re-infers every shape), still agrees at every stage and at the pooled output (now 2x2).
    /// </summary>
    [Fact]
    public void Backbone_MatchesOnnxRuntimeAtAnotherInputSize()
    {
        using var scope = NewDisposeScope();
        var encoder = fixture.Encoder;
        using var generator = new Generator(4);
        var backboneInput = randn([1, 3, 256, 256], generator: generator) * 60f;
        var stages = encoder.ForwardStages(backboneInput);
        var pooled = encoder.FeaturizerPool(stages[^1]);
        var names = encoder.Layout.Stages.Select(s => s.OutputName).ToList();
        using var session = new InferenceSession(OnnxTestModels.WithGraphEdits(
            File.ReadAllBytes(ResNet18EncoderOptions.DefaultModelPath), names, inputShape: [1, 3, 256, 256]));

        var reference = Run(session, encoder.Layout.InputName, backboneInput, [.. names, encoder.Layout.FinalPool!.OutputName]);

        for (var i = 0; i < stages.Count; i++) AssertClose($"256x256 {names[i]}", stages[i], reference[names[i]]);
        AssertClose("256x256 pooled", pooled, reference[encoder.Layout.FinalPool.OutputName]);
        Assert.Equal(new long[] { 1, 512, 2, 2 }, pooled.shape);
    }

    [Fact]
    public void Encode_MatchesMlNetPreprocessingFollowedByResNet18()
    {
        using var scope = NewDisposeScope();
        var encoder = fixture.Encoder;
        using var images = ResNet18EncoderFixture.RandomImages(2, 224, 224, seed: 2);
        var normalised = fixture.Normalise(images);
        var backboneInput = encoder.ToBackboneInput(normalised);
        var grid = encoder.EncodeGrid(normalised);
        var tokens = encoder.Encode(normalised);
        var stageName = encoder.Layout.Stages[(int)encoder.Stage - 1].OutputName;
        var preprocessing = fixture.Preprocessing;
        using var preprocessSession = new InferenceSession(ResNet18EncoderOptions.DefaultPreprocessModelPath);
        using var resnetSession = new InferenceSession(
            OnnxTestModels.WithGraphEdits(File.ReadAllBytes(ResNet18EncoderOptions.DefaultModelPath), [stageName]));

        for (var b = 0; b < 2; b++)
        {
            // ML.NET's ExtractPixels hands the featurizer RGB pixels on the 0..255 scale.
            using var pixels = images[b..(b + 1)] * 255f;
            var preprocessed = Run(preprocessSession, preprocessing.InputName, pixels, [preprocessing.OutputName])[preprocessing.OutputName];
            AssertClose($"image {b} preprocessing", backboneInput[b..(b + 1)], preprocessed, 1e-5);
            var features = Run(resnetSession, encoder.Layout.InputName, preprocessed, [stageName])[stageName];
            AssertClose($"image {b} {encoder.Stage} grid", grid[b..(b + 1)], features);
            AssertClose($"image {b} {encoder.Stage} tokens", tokens[b..(b + 1)], features.flatten(2).transpose(1, 2));
        }
    }

    private static Dictionary<string, Tensor> Run(InferenceSession session, string inputName, Tensor input, IEnumerable<string> outputs)
    {
        var data = input.contiguous().data<float>().ToArray();
        var inputTensor = new DenseTensor<float>(data, input.shape.Select(d => (int)d).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, inputTensor)], outputs.ToList());
        return results.ToDictionary(
            result => result.Name,
            result =>
            {
                var values = result.AsTensor<float>();
                return tensor(values.ToArray(), values.Dimensions.ToArray().Select(d => (long)d).ToArray());
            });
    }

    private void AssertClose(string name, Tensor ours, Tensor reference, double tolerance = Tolerance)
    {
        var comparison = OutputComparison.Compare(name, ours, reference, tolerance);
        output.WriteLine($"{name} [{string.Join(",", comparison.Shape)}]: max abs {comparison.MaxAbsoluteError:E2}, relative {comparison.MaxRelativeError:E2}");
        Assert.True(comparison.Passed, $"{name}: relative error {comparison.MaxRelativeError:E3} exceeds {tolerance:E0}");
    }
}
