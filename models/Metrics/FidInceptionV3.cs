using RAE.Models.IO;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RAE.Models.Metrics;

/// <summary>The features of one forward: the 2048-d pool features and, when asked for, the '64', '192', '768' taps.</summary>
public sealed class InceptionFeatures(Tensor pool2048, Tensor? pool64, Tensor? pool192, Tensor? pool768) : IDisposable
{
    public Tensor Pool2048 { get; } = pool2048;

    public Tensor? Pool64 { get; } = pool64;

    public Tensor? Pool192 { get; } = pool192;

    public Tensor? Pool768 { get; } = pool768;

    public void Dispose()
    {
        Pool2048.Dispose();
        Pool64?.Dispose();
        Pool192?.Dispose();
        Pool768?.Dispose();
    }
}

/// <summary>
/// The FID InceptionV3 of torch-fidelity (<c>inception-v3-compat</c>, eval-spec §3): uint8 NCHW images of any size →
/// TF1 bilinear resize to 299 → <c>(x − 128) / 128</c> → the TensorFlow-compatible network → 2048-d pool features
/// (float32, before <c>fc</c>). Loads the released <c>pt_inception-2015-12-05</c> /
/// <c>weights-inception-2015-12-05</c> state dict strictly by its original keys.
/// </summary>
public sealed class FidInceptionV3 : nn.Module<Tensor, Tensor>
{
    public const int InputSize = 299;
    public const int FeatureDimension = 2048;
    public const int ClassCount = 1008;

    /// <summary>The modules whose outputs a trace records, in forward order.</summary>
    public static readonly IReadOnlyList<string> TracedModules =
    [
        "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2",
        "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c",
    ];

    private readonly BasicConv2d Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
    private readonly InceptionA Mixed_5b, Mixed_5c, Mixed_5d;
    private readonly InceptionB Mixed_6a;
    private readonly InceptionC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
    private readonly InceptionD Mixed_7a;
    private readonly InceptionE Mixed_7b, Mixed_7c;
    private readonly Linear fc;

    public FidInceptionV3() : base("FeatureExtractorInceptionV3")
    {
        Conv2d_1a_3x3 = new BasicConv2d("Conv2d_1a_3x3", 3, 32, 3, stride: 2);
        Conv2d_2a_3x3 = new BasicConv2d("Conv2d_2a_3x3", 32, 32, 3);
        Conv2d_2b_3x3 = new BasicConv2d("Conv2d_2b_3x3", 32, 64, 3, padding: 1);
        Conv2d_3b_1x1 = new BasicConv2d("Conv2d_3b_1x1", 64, 80, 1);
        Conv2d_4a_3x3 = new BasicConv2d("Conv2d_4a_3x3", 80, 192, 3);
        Mixed_5b = new InceptionA("Mixed_5b", 192, 32);
        Mixed_5c = new InceptionA("Mixed_5c", 256, 64);
        Mixed_5d = new InceptionA("Mixed_5d", 288, 64);
        Mixed_6a = new InceptionB("Mixed_6a", 288);
        Mixed_6b = new InceptionC("Mixed_6b", 768, 128);
        Mixed_6c = new InceptionC("Mixed_6c", 768, 160);
        Mixed_6d = new InceptionC("Mixed_6d", 768, 160);
        Mixed_6e = new InceptionC("Mixed_6e", 768, 192);
        Mixed_7a = new InceptionD("Mixed_7a", 768);
        Mixed_7b = new InceptionE("Mixed_7b", 1280, maxPoolBranch: false);
        Mixed_7c = new InceptionE("Mixed_7c", 2048, maxPoolBranch: true);
        fc = nn.Linear(FeatureDimension, ClassCount);
        RegisterComponents();
        foreach (var parameter in parameters()) parameter.requires_grad = false;
        eval();
    }

    /// <summary>Builds the network from a state dict with the released file's 472 keys (a <c>num_batches_tracked</c> is accepted).</summary>
    public static FidInceptionV3 FromStateDict(IReadOnlyDictionary<string, Tensor> stateDict, string source)
    {
        var model = new FidInceptionV3();
        try
        {
            StateDictLoading.LoadStrict(model, stateDict, source, keyPrefix: "",
                isIgnorable: key => key.EndsWith(".num_batches_tracked", StringComparison.Ordinal), isOptional: null);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Loads the user's Inception weights (<c>.pth</c> as released, or <c>.safetensors</c>) strictly by key.</summary>
    public static FidInceptionV3 Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"FID Inception weights not found: {path} (pt_inception-2015-12-05-6726825d.pth)", path);
        var stateDict = CheckpointLoader.LoadStateDict(path);
        try
        {
            return FromStateDict(stateDict, path);
        }
        finally
        {
            foreach (var tensor in stateDict.Values) tensor.Dispose();
        }
    }

    /// <summary>The 2048-d pool features [B, 2048] (float32) of uint8 NCHW images of any size.</summary>
    public override Tensor forward(Tensor images)
    {
        using var features = Extract(images, withTaps: false);
        return features.Pool2048.alias();
    }

    /// <summary>
    /// One forward of uint8 NCHW images. <paramref name="withTaps"/> adds the '64', '192', '768' taps (spatial means after
    /// MaxPool_1, MaxPool_2 and Mixed_6e); <paramref name="trace"/>, when given, receives every traced module's output.
    /// </summary>
    public InceptionFeatures Extract(Tensor images, bool withTaps, Action<string, Tensor>? trace = null)
    {
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"FID Inception input must be NCHW with 3 channels, got [{string.Join(", ", images.shape)}]", nameof(images));
        if (images.dtype != ScalarType.Byte)
            throw new ArgumentException($"FID Inception input must be uint8 (0..255), got {images.dtype}", nameof(images));
        using var guard = no_grad();
        using var scope = NewDisposeScope();
        var x = TensorFlowResize.Bilinear(images.to(ScalarType.Float32), InputSize, InputSize);
        x = (x - 128) / 128;
        Tensor Step(string name, Func<Tensor, Tensor> module, Tensor input)
        {
            var output = module(input);
            trace?.Invoke(name, output);
            return output;
        }
        x = Step("Conv2d_1a_3x3", Conv2d_1a_3x3.forward, x);
        x = Step("Conv2d_2a_3x3", Conv2d_2a_3x3.forward, x);
        x = Step("Conv2d_2b_3x3", Conv2d_2b_3x3.forward, x);
        x = Step("MaxPool_1", input => F.max_pool2d(input, [3, 3], strides: [2, 2]), x);
        var pool64 = withTaps ? SpatialMean(x) : null;
        x = Step("Conv2d_3b_1x1", Conv2d_3b_1x1.forward, x);
        x = Step("Conv2d_4a_3x3", Conv2d_4a_3x3.forward, x);
        x = Step("MaxPool_2", input => F.max_pool2d(input, [3, 3], strides: [2, 2]), x);
        var pool192 = withTaps ? SpatialMean(x) : null;
        foreach (var (name, block) in new (string, nn.Module<Tensor, Tensor>)[]
                 { ("Mixed_5b", Mixed_5b), ("Mixed_5c", Mixed_5c), ("Mixed_5d", Mixed_5d), ("Mixed_6a", Mixed_6a), ("Mixed_6b", Mixed_6b),
                   ("Mixed_6c", Mixed_6c), ("Mixed_6d", Mixed_6d), ("Mixed_6e", Mixed_6e) })
            x = Step(name, block.forward, x);
        var pool768 = withTaps ? SpatialMean(x) : null;
        x = Step("Mixed_7a", Mixed_7a.forward, x);
        x = Step("Mixed_7b", Mixed_7b.forward, x);
        x = Step("Mixed_7c", Mixed_7c.forward, x);
        var pool2048 = F.adaptive_avg_pool2d(x, [1, 1]).flatten(1);
        return new InceptionFeatures(pool2048.MoveToOuterDisposeScope(), pool64?.MoveToOuterDisposeScope(),
            pool192?.MoveToOuterDisposeScope(), pool768?.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The 2048-d features of uint8 images in batches of <paramref name="batchSize"/> (float32 [N, 2048]). NHWC input
    /// (last dimension 3) is transposed first, exactly by <c>fid.py</c>'s rule (so NCHW images 3 pixels wide are taken as NHWC).
    /// </summary>
    public Tensor Features(Tensor images, int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        if (images.dim() != 4) throw new ArgumentException($"images must be 4-D (NCHW or NHWC), got [{string.Join(", ", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        var nchw = images.shape[3] == 3 ? images.permute(0, 3, 1, 2) : images;
        var batches = new List<Tensor>();
        for (long start = 0; start < nchw.shape[0]; start += batchSize)
            batches.Add(forward(nchw.narrow(0, start, Math.Min(batchSize, nchw.shape[0] - start)).contiguous()));
        return cat(batches, 0).MoveToOuterDisposeScope();
    }

    private static Tensor SpatialMean(Tensor x) => F.adaptive_avg_pool2d(x, [1, 1]).flatten(1);
}
