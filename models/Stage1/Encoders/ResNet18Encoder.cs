using RAE.Models.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Stage1.Encoders;

/// <summary>Which residual stage's feature map becomes the latent grid (torchvision's layer1..layer4).</summary>
public enum ResNetStage
{
    Layer1 = 1,
    Layer2 = 2,
    Layer3 = 3,
    Layer4 = 4,
}

/// <summary>How the ML.NET mean image is subtracted.</summary>
public enum ResNetMeanSubtraction
{
    /// <summary>The per-pixel mean image of ResNetPreprocess.onnx, exactly at its size (224) and bilinearly resized otherwise.</summary>
    PerPixelImage,

    /// <summary>One mean per channel (the average of the mean image); independent of the input size.</summary>
    PerChannel,
}

/// <param name="ModelPath">ResNet18.onnx; null = DnnImageModels/ResNet18Onnx/ResNet18.onnx beside the application.</param>
/// <param name="PreprocessModelPath">ResNetPreprocess.onnx; null = DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx.</param>
/// <param name="Stage">Feature map used as the latent grid. Layer3 (stride 16, 256 channels) gives a 16x16 grid at 256².</param>
/// <param name="MeanSubtraction">How the ML.NET mean image is applied.</param>
public sealed record ResNet18EncoderOptions(
    string? ModelPath = null,
    string? PreprocessModelPath = null,
    ResNetStage Stage = ResNetStage.Layer3,
    ResNetMeanSubtraction MeanSubtraction = ResNetMeanSubtraction.PerPixelImage)
{
    public static string DefaultModelPath =>
        Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNet18Onnx", "ResNet18.onnx");

    public static string DefaultPreprocessModelPath =>
        Path.Combine(AppContext.BaseDirectory, "DnnImageModels", "ResNetPrepOnnx", "ResNetPreprocess.onnx");
}

/// <summary>
/// The offline default representation encoder: the ImageNet-trained ResNet18 of ML.NET's DnnImageFeaturizer (a CNTK
/// export; note its layer4 has three basic blocks) ported to TorchSharp, weights read from the ONNX initializers. The
/// chosen stage's feature map [B, C, h, w] is the latent grid; tokens are that map flattened row-major to [B, h·w, C].
/// <para>
/// Input contract (RAE): images in [0, 1], RGB, normalised as (x − <see cref="ImageMean"/>) / <see cref="ImageStd"/>.
/// The network itself expects BGR pixels in [0, 255] minus the ML.NET mean image, so <see cref="ToBackboneInput"/>
/// undoes the normalisation exactly. ImageMean is the mean image's per-channel average / 255; ImageStd is chosen as
/// the ImageNet std (the CNTK model divides by nothing) so that the decoder's pixel targets stay near unit scale.
/// </para>
/// </summary>
public sealed class ResNet18Encoder : nn.Module<Tensor, Tensor>, IRepresentationEncoder
{
    private static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    private readonly PaddedConv2d conv1;
    private readonly FrozenBatchNorm2d bn1;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;
    private readonly Tensor mean_image_bgr;

    private readonly ResNetOnnxLayout _layout;
    private readonly float[] _imageMean;
    private readonly float[] _imageStd = [.. ImageNetStd];
    private readonly ResNetMeanSubtraction _meanSubtraction;

    private ResNet18Encoder(ResNetOnnxLayout layout, ResNetOnnxPreprocessing preprocessing, ResNet18EncoderOptions options)
        : base("ResNet18Encoder")
    {
        if (layout.Stages.Count != 4)
            throw new InvalidDataException($"the ResNet graph has {layout.Stages.Count} stages; this encoder needs 4 (layer1..layer4)");
        _layout = layout;
        Stage = options.Stage;
        _meanSubtraction = options.MeanSubtraction;
        var stage = layout.Stages[(int)options.Stage - 1];
        PatchSize = checked((int)stage.CumulativeStride);
        HiddenSize = checked((int)stage.Channels);
        _imageMean = [.. preprocessing.ChannelAveragesRgb().Select(average => average / 255f)];

        conv1 = new PaddedConv2d("conv1", layout.StemConv);
        bn1 = new FrozenBatchNorm2d("bn1", layout.StemConv.OutChannels, layout.StemBn.Epsilon);
        layer1 = Layer(layout.Stages[0]);
        layer2 = Layer(layout.Stages[1]);
        layer3 = Layer(layout.Stages[2]);
        layer4 = Layer(layout.Stages[3]);
        mean_image_bgr = preprocessing.MeanImageTensor();
        // Derived from ResNetPreprocess.onnx on every load, so it is not part of the state dict (registered before
        // RegisterComponents, which would otherwise register the field as a persistent buffer).
        register_buffer(nameof(mean_image_bgr), mean_image_bgr, persistent: false);
        RegisterComponents();
    }

    public ResNetStage Stage { get; }

    public int PatchSize { get; }

    public int HiddenSize { get; }

    public IReadOnlyList<float> ImageMean => _imageMean;

    public IReadOnlyList<float> ImageStd => _imageStd;

    /// <summary>The structure read from the graph (stage output names, strides, pads).</summary>
    public ResNetOnnxLayout Layout => _layout;

    /// <summary>state_dict key → ONNX initializer it was loaded from.</summary>
    public IReadOnlyDictionary<string, string> WeightSources { get; private set; } = new Dictionary<string, string>();

    /// <summary>Reads both ONNX files, builds the network and loads every weight; the module is frozen and in eval mode.</summary>
    public static ResNet18Encoder Load(ResNet18EncoderOptions? options = null, Device? device = null)
    {
        options ??= new ResNet18EncoderOptions();
        var modelPath = options.ModelPath ?? ResNet18EncoderOptions.DefaultModelPath;
        var preprocessPath = options.PreprocessModelPath ?? ResNet18EncoderOptions.DefaultPreprocessModelPath;
        RequireFile(modelPath, "ResNet18 ONNX model");
        RequireFile(preprocessPath, "ResNet preprocessing ONNX model");

        return FromModels(OnnxReader.Load(modelPath), ResNetOnnxPreprocessing.Load(preprocessPath), options, device);
    }

    /// <summary>Builds an encoder from already parsed ONNX models (several stages can share one parse).</summary>
    public static ResNet18Encoder FromModels(
        OnnxModel model, ResNetOnnxPreprocessing preprocessing, ResNet18EncoderOptions options, Device? device = null)
    {
        if (!Enum.IsDefined(options.Stage)) throw new ArgumentOutOfRangeException(nameof(options), options.Stage, "unknown ResNet stage");
        if (!Enum.IsDefined(options.MeanSubtraction))
            throw new ArgumentOutOfRangeException(nameof(options), options.MeanSubtraction, "unknown mean subtraction");
        var layout = ResNetOnnxLayout.FromGraph(model.Graph);
        var encoder = new ResNet18Encoder(layout, preprocessing, options);
        encoder.WeightSources = ResNetOnnxWeights.Load(encoder, layout, model);
        encoder.eval();
        if (device is not null) encoder.to(device);
        return encoder;
    }

    public override Tensor forward(Tensor images) => Encode(images);

    /// <summary>Normalised images [B, 3, H, W] (H, W multiples of <see cref="PatchSize"/>) → tokens [B, h·w, C].</summary>
    public Tensor Encode(Tensor images)
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var grid = EncodeGrid(images);
        return grid.flatten(2).transpose(1, 2).contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Normalised images [B, 3, H, W] → the chosen stage's feature map [B, C, H/PatchSize, W/PatchSize].</summary>
    public Tensor EncodeGrid(Tensor images)
    {
        ValidateImages(images);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var stages = ForwardStages(ToBackboneInput(images), (int)Stage);
        return stages[^1].MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Normalised RGB images → what ResNet18.onnx takes: BGR, [0, 255] scale, minus the mean image. Equal to ML.NET's
    /// ExtractPixels + ResNetPreprocess.onnx applied to the un-normalised pixels (exactly so at the mean image's size).
    /// </summary>
    public Tensor ToBackboneInput(Tensor images)
    {
        ValidateImages(images);
        using var scope = NewDisposeScope();
        var (height, width) = (images.shape[2], images.shape[3]);
        var scaleBgr = ChannelColumn([.. ImageNetStd.Reverse().Select(std => 255f * std)], images);
        var scaled = images.flip(1).mul_(scaleBgr);
        if (_meanSubtraction == ResNetMeanSubtraction.PerChannel) return scaled.MoveToOuterDisposeScope();
        // x·255 − meanImage = n·255·std + (255·mean − meanImage), with n the normalised image.
        var meanBgr = ChannelColumn([.. _imageMean.Reverse().Select(mean => 255f * mean)], images);
        var subtracted = scaled.add_(meanBgr).sub_(MeanImageAt(height, width));
        return subtracted.MoveToOuterDisposeScope();
    }

    /// <summary>Runs the backbone on an already preprocessed input; returns the outputs of layer1..layer<paramref name="stageCount"/>.</summary>
    /// <param name="trackInputGradient">Record autograd through the frozen network so that gradients reach the input (a
    /// discriminator in the generator step); otherwise it runs under no-grad.</param>
    public IReadOnlyList<Tensor> ForwardStages(Tensor backboneInput, int stageCount = 4, bool trackInputGradient = false)
    {
        using var noGrad = trackInputGradient ? null : no_grad();
        return RunBackbone(backboneInput, stageCount, keepStem: false);
    }

    /// <summary>
    /// The stem's output (after its ReLU, before the max pool) followed by layer1..layer<paramref name="stageCount"/>, with
    /// autograd as the caller has it: the weights are frozen, so gradients reach only the input (the perceptual loss's path).
    /// </summary>
    public IReadOnlyList<Tensor> StemAndStages(Tensor backboneInput, int stageCount = 4) => RunBackbone(backboneInput, stageCount, keepStem: true);

    private List<Tensor> RunBackbone(Tensor backboneInput, int stageCount, bool keepStem)
    {
        if (stageCount is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(stageCount), stageCount, "stage count must be 1..4");
        // Every strided layer must see an even size, or the main path and the projection shortcut disagree in size
        // (the graph's asymmetric pads give floor((n+1-3)/2)+1 and its 1x1 projection floor((n-1)/2)+1).
        var stride = _layout.Stages[stageCount - 1].CumulativeStride;
        if (backboneInput.dim() != 4 || backboneInput.shape[1] != 3 || backboneInput.shape[2] % stride != 0 || backboneInput.shape[3] % stride != 0)
            throw new ArgumentException(
                $"backbone input must be [B, 3, H, W] with H and W multiples of {stride} to run {stageCount} stage(s), got [{string.Join(", ", backboneInput.shape)}]",
                nameof(backboneInput));
        using var scope = NewDisposeScope();
        var stem = F.relu(bn1.call(conv1.call(backboneInput)));
        var x = MaxPool(stem);
        var outputs = keepStem ? new List<Tensor> { stem } : [];
        foreach (var layer in new[] { layer1, layer2, layer3, layer4 }.Take(stageCount))
        {
            x = layer.call(x);
            outputs.Add(x);
        }
        foreach (var output in outputs) output.MoveToOuterDisposeScope();
        return outputs;
    }

    /// <summary>The featurizer graph's own output: its final AveragePool applied to the layer4 map.</summary>
    public Tensor FeaturizerPool(Tensor layer4Output)
    {
        var pool = _layout.FinalPool ?? throw new InvalidOperationException("the ONNX graph ends without an AveragePool");
        return F.avg_pool2d(layer4Output, [pool.Kernel, pool.Kernel], [pool.Stride, pool.Stride]);
    }

    private Tensor MaxPool(Tensor input)
    {
        var pads = _layout.MaxPoolPads;
        var kernel = new[] { _layout.MaxPoolKernel, _layout.MaxPoolKernel };
        var stride = new[] { _layout.MaxPoolStride, _layout.MaxPoolStride };
        if (pads[0] == pads[2] && pads[1] == pads[3]) return F.max_pool2d(input, kernel, stride, [pads[0], pads[1]]);
        using var padded = F.pad(input, [pads[1], pads[3], pads[0], pads[2]], value: double.NegativeInfinity);
        return F.max_pool2d(padded, kernel, stride);
    }

    private Tensor MeanImageAt(long height, long width)
    {
        if (mean_image_bgr.shape[2] == height && mean_image_bgr.shape[3] == width) return mean_image_bgr.alias();
        return F.interpolate(mean_image_bgr, [height, width], mode: InterpolationMode.Bilinear, align_corners: false);
    }

    private void ValidateImages(Tensor images)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"images must be [B, 3, H, W], got [{string.Join(", ", images.shape)}]", nameof(images));
        if (images.dtype != ScalarType.Float32)
            throw new ArgumentException($"images must be float32, got {images.dtype}", nameof(images));
        if (images.shape[2] % PatchSize != 0 || images.shape[3] % PatchSize != 0)
            throw new ArgumentException(
                $"image size {images.shape[2]}x{images.shape[3]} is not a multiple of the {Stage} stride {PatchSize}", nameof(images));
    }

    private static Tensor ChannelColumn(float[] values, Tensor like) =>
        tensor(values, [1, 3, 1, 1], ScalarType.Float32, like.device);

    private static Sequential Layer(StageSpec stage) =>
        nn.Sequential(stage.Blocks.Select((block, index) => (index.ToString(), (nn.Module<Tensor, Tensor>)new BasicBlock(index.ToString(), block))));

    private static void RequireFile(string path, string what)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException(
                $"{what} not found at {path}. It ships in the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18 and the " +
                "RAE.Models build copies it to DnnImageModels/ in the output folder; pass its path in ResNet18EncoderOptions.", path);
    }
}
