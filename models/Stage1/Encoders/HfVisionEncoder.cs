using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>The hyper-parameters every Hugging Face vision encoder config has, as <see cref="HfVisionEncoder{TConfig}"/> needs them.</summary>
public interface IHfVisionConfig
{
    int HiddenSize { get; }

    int PatchSize { get; }

    int NumChannels { get; }
}

/// <summary>
/// How a family's <c>model.safetensors</c> is read and its pixels normalised: <paramref name="AnchorKey"/> (a key every
/// checkpoint has, used to detect a common prefix such as <c>vision_model.</c>), the keys accepted and ignored, the keys
/// that may be absent, and the image mean/std used when the folder has no <c>preprocessor_config.json</c>.
/// </summary>
public sealed record HfEncoderCheckpoint(
    string AnchorKey,
    float[] DefaultMean,
    float[] DefaultStd,
    Func<string, bool> IsIgnorable,
    Func<string, bool>? IsOptional = null);

/// <summary>
/// What the Hugging Face encoders (DINOv2 with registers, SigLIP2, MAE) share: the config, the image statistics and the
/// <see cref="IRepresentationEncoder"/> properties, frozen eval mode, strict weight loading, <c>FromPretrained</c> from a
/// model folder and the input check. A subclass declares its modules (their field names are the checkpoint's keys),
/// calls <see cref="RegisterFrozen"/> at the end of its constructor and implements <see cref="Tokens"/>.
/// </summary>
public abstract class HfVisionEncoder<TConfig> : nn.Module<Tensor, Tensor>, IRepresentationEncoder
    where TConfig : IHfVisionConfig
{
    private readonly HfEncoderCheckpoint _checkpoint;
    private readonly float[] _imageMean;
    private readonly float[] _imageStd;

    protected HfVisionEncoder(string name, TConfig config, HfEncoderCheckpoint checkpoint, IReadOnlyList<float>? imageMean,
        IReadOnlyList<float>? imageStd) : base(name)
    {
        Config = config;
        _checkpoint = checkpoint;
        _imageMean = (imageMean ?? checkpoint.DefaultMean).ToArray();
        _imageStd = (imageStd ?? checkpoint.DefaultStd).ToArray();
    }

    public TConfig Config { get; }

    public int PatchSize => Config.PatchSize;

    public int HiddenSize => Config.HiddenSize;

    public IReadOnlyList<float> ImageMean => _imageMean;

    public IReadOnlyList<float> ImageStd => _imageStd;

    /// <summary>Loads a safetensors checkpoint strictly: every parameter must be there with its shape, no unknown key.</summary>
    public void LoadWeights(string safetensorsPath) =>
        HfEncoderSupport.LoadWeights(this, safetensorsPath, _checkpoint.AnchorKey, _checkpoint.IsIgnorable, _checkpoint.IsOptional);

    public Tensor Encode(Tensor images) => forward(images);

    /// <summary>Images [B,C,H,W] (H and W multiples of the patch size) → patch tokens [B,(H/p)(W/p),D].</summary>
    public sealed override Tensor forward(Tensor images)
    {
        HfEncoderSupport.RequireImages(images, Config.NumChannels, Config.PatchSize, GetType().Name);
        using var scope = NewDisposeScope();
        return Tokens(images).MoveToOuterDisposeScope();
    }

    /// <summary>The encoder proper on checked images, inside a dispose scope: patch tokens only (no CLS or registers).</summary>
    protected abstract Tensor Tokens(Tensor images);

    /// <summary>Registers the subclass's modules, freezes every parameter and switches to eval mode: the encoders are never trained.</summary>
    protected void RegisterFrozen()
    {
        RegisterComponents();
        HfEncoderSupport.Freeze(this);
        eval();
    }

    /// <summary>
    /// Builds an encoder from <c>config.json</c> of a Hugging Face model folder (image statistics from its
    /// <c>preprocessor_config.json</c> when present) and loads <c>model.safetensors</c> strictly.
    /// </summary>
    protected static TEncoder LoadPretrained<TEncoder>(string folder, Device? device, HfEncoderCheckpoint checkpoint,
        Func<HfConfig, TConfig> readConfig, Func<TConfig, float[], float[], TEncoder> create)
        where TEncoder : HfVisionEncoder<TConfig>
    {
        var (configPath, weightsPath) = HfEncoderSupport.RequireFiles(folder);
        var (mean, std) = HfEncoderSupport.ImageStatistics(folder, checkpoint.DefaultMean, checkpoint.DefaultStd);
        var model = create(readConfig(HfConfig.Load(configPath)), mean, std);
        try
        {
            model.LoadWeights(weightsPath);
            if (device is not null) model.to(device);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
