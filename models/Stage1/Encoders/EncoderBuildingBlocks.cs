using RAE.Models.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>transformers <c>ViTPatchEmbeddings</c>-style module: a Conv2d named <c>projection</c>, flattened to tokens.</summary>
public sealed class HfPatchEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d projection;

    public HfPatchEmbeddings(int channels, int width, int patchSize) : base(nameof(HfPatchEmbeddings))
    {
        projection = nn.Conv2d(channels, width, patchSize, stride: patchSize);
        RegisterComponents();
    }

    /// <summary>[B,C,H,W] → [B,(H/p)(W/p),D], row-major over the patch grid.</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var map = projection.forward(pixels);
        using var flat = map.flatten(2);
        return flat.transpose(1, 2);
    }
}

/// <summary>A stack of layers under the field name <c>layer</c> (transformers ViT/DINOv2 <c>encoder.layer.{i}</c>).</summary>
public sealed class HfLayerStack<TLayer> : nn.Module<Tensor, Tensor> where TLayer : nn.Module<Tensor, Tensor>
{
    private readonly ModuleList<TLayer> layer;

    public HfLayerStack(IEnumerable<TLayer> layers) : base("HfEncoder")
    {
        layer = new ModuleList<TLayer>(layers.ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden)
    {
        using var scope = NewDisposeScope();
        foreach (var block in layer) hidden = block.forward(hidden);
        return hidden.MoveToOuterDisposeScope();
    }
}

/// <summary>Helpers shared by the Hugging Face encoders: folder layout, image statistics, position tables.</summary>
public static class HfEncoderSupport
{
    public const string ConfigFile = "config.json";
    public const string WeightsFile = "model.safetensors";
    public const string PreprocessorFile = "preprocessor_config.json";

    public static readonly float[] ImageNetMean = [0.485f, 0.456f, 0.406f];
    public static readonly float[] ImageNetStd = [0.229f, 0.224f, 0.225f];

    /// <summary>Checks the folder holds config.json and model.safetensors and returns their paths.</summary>
    public static (string Config, string Weights) RequireFiles(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"encoder folder not found: {folder}");
        var config = Path.Combine(folder, ConfigFile);
        var weights = Path.Combine(folder, WeightsFile);
        if (!File.Exists(config)) throw new FileNotFoundException($"encoder folder {folder} has no {ConfigFile}", config);
        if (!File.Exists(weights)) throw new FileNotFoundException($"encoder folder {folder} has no {WeightsFile}", weights);
        return (config, weights);
    }

    /// <summary>image_mean/image_std from preprocessor_config.json when the folder has one, else the model family's values.</summary>
    public static (float[] Mean, float[] Std) ImageStatistics(string folder, float[] defaultMean, float[] defaultStd)
    {
        var path = Path.Combine(folder, PreprocessorFile);
        if (!File.Exists(path)) return (defaultMean, defaultStd);
        var config = HfConfig.Load(path);
        var mean = config.GetFloatArray("image_mean") ?? defaultMean;
        var std = config.GetFloatArray("image_std") ?? defaultStd;
        if (mean.Length != 3 || std.Length != 3)
            throw new InvalidDataException($"{path}: image_mean and image_std must have 3 values");
        return (mean, std);
    }

    /// <summary>Loads the safetensors file strictly into <paramref name="module"/>, detecting a common key prefix by <paramref name="anchorKey"/>.</summary>
    public static void LoadWeights(nn.Module module, string weightsPath, string anchorKey, Func<string, bool> isIgnorable,
        Func<string, bool>? isOptional = null)
    {
        var tensors = SafeTensors.Load(weightsPath);
        try
        {
            var prefix = StrictWeightLoader.DetectPrefix(tensors.Keys, anchorKey, weightsPath);
            StrictWeightLoader.Load(module, tensors, weightsPath, prefix, isIgnorable, isOptional);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    /// <summary>
    /// A CLS-first position table [1,1+P,D] for an image of <paramref name="height"/>×<paramref name="width"/>: the
    /// table as is when its grid matches (and the image is square), else its patch part resized by
    /// <see cref="ResizePatchTable"/> with the CLS row kept in front.
    /// </summary>
    public static Tensor PositionTableFor(Tensor tableWithCls, long height, long width, long patchCount, long patchSize, bool antialias)
    {
        if (patchCount == tableWithCls.shape[1] - 1 && height == width) return tableWithCls;
        using var patchTable = ResizePatchTable(tableWithCls[.., 1..], height / patchSize, width / patchSize, antialias);
        return cat([tableWithCls[.., ..1], patchTable], 1);
    }

    /// <summary>
    /// Resizes a square patch position table [1,P,D] to [1,gh·gw,D] with bicubic interpolation (align_corners=False),
    /// computed in float32, optionally antialiased (PyTorch's separable antialias kernel, used by DINOv2).
    /// </summary>
    public static Tensor ResizePatchTable(Tensor table, long gridHeight, long gridWidth, bool antialias)
    {
        using var scope = NewDisposeScope();
        var positions = table.shape[1];
        var side = (long)Math.Round(Math.Sqrt(positions));
        if (side * side != positions) throw new InvalidDataException($"position table with {positions} entries is not a square grid");
        var width = table.shape[2];
        var map = table.to(ScalarType.Float32).reshape(1, side, side, width).permute(0, 3, 1, 2);
        var resized = nn.functional.interpolate(map, [gridHeight, gridWidth], mode: InterpolationMode.Bicubic,
            align_corners: false, antialias: antialias);
        return resized.to(table.dtype).permute(0, 2, 3, 1).reshape(1, gridHeight * gridWidth, width).MoveToOuterDisposeScope();
    }

    /// <summary>Marks every parameter frozen (the encoders are never trained).</summary>
    public static void Freeze(nn.Module module)
    {
        foreach (var (_, parameter) in module.named_parameters()) parameter.requires_grad = false;
    }

    public static void RequireImages(Tensor images, int channels, int patchSize, string encoder)
    {
        if (images.dim() != 4 || images.shape[1] != channels)
            throw new ArgumentException($"{encoder} expects images [B,{channels},H,W], got [{string.Join(",", images.shape)}]");
        if (images.shape[2] % patchSize != 0 || images.shape[3] % patchSize != 0)
            throw new ArgumentException($"{encoder}: image size {images.shape[2]}x{images.shape[3]} is not divisible by the patch size {patchSize}");
    }
}
