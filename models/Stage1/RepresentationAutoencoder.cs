using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>The train-mode latent noise draws of a batch: uniforms [B,1,1] for σ_b = tau·U and normals of <paramref name="tokenShape"/>.</summary>
public delegate (Tensor Uniforms, Tensor Normals) LatentNoiseDraws(long batch, long[] tokenShape, ScalarType dtype, Device device);

/// <summary>Constructor options of the reference <c>stage1.RAE</c> (spec §2.1) other than the encoder/decoder.</summary>
public sealed record RaeOptions(
    int EncoderInputSize = 224,
    int DecoderPatchSize = 16,
    double NoiseTau = 0.8,
    bool ReshapeTo2d = true);

/// <summary>
/// The reference <c>stage1.RAE</c> (spec §2): frozen representation encoder + <see cref="GeneralDecoder"/>.
/// Only the decoder is a registered submodule (state-dict keys <c>decoder.*</c>); the encoder is frozen and loaded
/// from its own Hugging Face checkpoint. <see cref="nn.Module.train"/> controls the noise augmentation.
/// </summary>
public sealed class RepresentationAutoencoder : nn.Module<Tensor, Tensor>
{
    private readonly IRepresentationEncoder? _encoder;
    private readonly GeneralDecoder _decoder;
    private readonly float[] _imageMean;
    private readonly float[] _imageStd;

    /// <summary>
    /// Builds the decoder from the decoder config.json values with the RAE overrides (hidden_size := encoder width,
    /// patch_size := <see cref="RaeOptions.DecoderPatchSize"/>, image_size := p·√base_patches).
    /// </summary>
    public RepresentationAutoencoder(IRepresentationEncoder encoder, DecoderConfig decoderConfig, RaeOptions options,
        LatentNormalization? normalization = null, Device? device = null, Generator? generator = null)
        : this(encoder, new GeneralDecoder(
                decoderConfig.WithRaeOverrides(encoder.HiddenSize, options.DecoderPatchSize, BasePatches(encoder, options)), device, generator),
            encoder.ImageMean, encoder.ImageStd, options, normalization)
    {
    }

    private RepresentationAutoencoder(IRepresentationEncoder? encoder, GeneralDecoder decoder, IReadOnlyList<float> imageMean,
        IReadOnlyList<float> imageStd, RaeOptions options, LatentNormalization? normalization) : base("RAE")
    {
        if (imageMean.Count != decoder.Config.NumChannels || imageStd.Count != decoder.Config.NumChannels)
            throw new ArgumentException($"image mean/std need {decoder.Config.NumChannels} values, got {imageMean.Count}/{imageStd.Count}");
        if (imageStd.Any(s => s <= 0)) throw new ArgumentException($"image std must be positive, got [{string.Join(", ", imageStd)}]");
        _encoder = encoder;
        _decoder = decoder;
        _imageMean = imageMean.ToArray();
        _imageStd = imageStd.ToArray();
        Options = options;
        Normalization = normalization;
        register_module("decoder", decoder);
    }

    /// <summary>
    /// An RAE that only decodes (Stage-2 sampling needs no encoder): <see cref="Encode"/> throws.
    /// <paramref name="imageMean"/>/<paramref name="imageStd"/> are the encoder's (used to de-normalise pixels).
    /// </summary>
    public static RepresentationAutoencoder ForDecoding(GeneralDecoder decoder, IReadOnlyList<float> imageMean,
        IReadOnlyList<float> imageStd, LatentNormalization? normalization, RaeOptions? options = null) =>
        new(null, decoder, imageMean, imageStd, options ?? new RaeOptions(NoiseTau: 0), normalization);

    public RaeOptions Options { get; }

    public GeneralDecoder Decoder => _decoder;

    /// <summary>Null means no latent normalisation (the reference's <c>do_normalization=False</c>).</summary>
    public LatentNormalization? Normalization { get; }

    /// <summary>Loads decoder weights (a released <c>model.pt</c> converted to safetensors, keys without <c>decoder.</c>) strictly.</summary>
    public void LoadDecoderWeights(string safetensorsPath) => StrictWeightLoader.Load(_decoder, safetensorsPath);

    /// <summary>
    /// Images [B,3,H,W] in [0,1] → latent [B,C,h,w] (or tokens [B,N,C] without reshape), always without gradient.
    /// In training mode with noise_tau &gt; 0 each sample gets z + σ_b·ε, σ_b = tau·U(0,1), drawn from <paramref name="generator"/>.
    /// </summary>
    public Tensor Encode(Tensor images, Generator? generator = null) =>
        Encode(images, (batch, shape, dtype, device) => (rand([batch, 1, 1], dtype: dtype, device: device, generator: generator),
            randn(shape, dtype: dtype, device: device, generator: generator)));

    /// <summary>
    /// As <see cref="Encode(Tensor, Generator?)"/> with the train-mode noise draws supplied by <paramref name="noise"/>: the
    /// uniforms [B,1,1] of σ_b and the normals of the token shape [B,N,C]. A data-parallel job draws them per global
    /// sample, so a sample's noise does not depend on which rank encodes it.
    /// </summary>
    public Tensor Encode(Tensor images, LatentNoiseDraws noise)
    {
        ArgumentNullException.ThrowIfNull(noise);
        var encoder = _encoder ?? throw new InvalidOperationException("this RAE was built for decoding only and has no encoder");
        if (images.dim() != 4 || images.shape[1] != 3)
            throw new ArgumentException($"RAE.Encode expects images [B,3,H,W], got [{string.Join(",", images.shape)}]");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var size = Options.EncoderInputSize;
        var x = images.shape[2] != size || images.shape[3] != size
            ? nn.functional.interpolate(images, [size, size], mode: InterpolationMode.Bicubic, align_corners: false)
            : images;
        x = (x - ChannelTensor(_imageMean, x)) / ChannelTensor(_imageStd, x);
        var z = encoder.Encode(x);
        if (training && Options.NoiseTau > 0)
        {
            var (uniforms, normals) = noise(z.shape[0], z.shape, z.dtype, z.device);
            z = z + Options.NoiseTau * uniforms * normals;
        }
        if (Options.ReshapeTo2d) z = TokensToGrid(z);
        if (Normalization is not null) z = Normalization.Normalize(z);
        return z.MoveToOuterDisposeScope();
    }

    /// <summary>Latent → images [B,3,h·p,w·p] ≈ [0,1] (not clamped).</summary>
    public Tensor Decode(Tensor latent)
    {
        using var scope = NewDisposeScope();
        var z = Normalization is null ? latent : Normalization.Denormalize(latent);
        if (Options.ReshapeTo2d) z = GridToTokens(z);
        var logits = _decoder.forward(z);
        var pixels = _decoder.unpatchify(logits);
        pixels = pixels * ChannelTensor(_imageStd, pixels) + ChannelTensor(_imageMean, pixels);
        return pixels.MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor images)
    {
        using var latent = Encode(images);
        return Decode(latent);
    }

    /// <summary>[B,N,C] → [B,C,√N,√N]; token n goes to (n / w, n % w).</summary>
    public static Tensor TokensToGrid(Tensor tokens)
    {
        if (tokens.dim() != 3) throw new ArgumentException($"expected tokens [B,N,C], got [{string.Join(",", tokens.shape)}]");
        var side = (long)Math.Round(Math.Sqrt(tokens.shape[1]));
        if (side * side != tokens.shape[1]) throw new ArgumentException($"{tokens.shape[1]} tokens do not form a square grid");
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side);
    }

    /// <summary>[B,C,h,w] → [B,h·w,C], the inverse of <see cref="TokensToGrid"/>.</summary>
    public static Tensor GridToTokens(Tensor grid)
    {
        if (grid.dim() != 4) throw new ArgumentException($"expected a latent [B,C,h,w], got [{string.Join(",", grid.shape)}]");
        return grid.reshape(grid.shape[0], grid.shape[1], grid.shape[2] * grid.shape[3]).transpose(1, 2);
    }

    private static int BasePatches(IRepresentationEncoder encoder, RaeOptions options)
    {
        if (options.EncoderInputSize % encoder.PatchSize != 0)
            throw new ArgumentException($"encoder_input_size {options.EncoderInputSize} must be divisible by the encoder patch size {encoder.PatchSize}");
        var side = options.EncoderInputSize / encoder.PatchSize;
        return side * side;
    }

    private static Tensor ChannelTensor(float[] values, Tensor like) =>
        tensor(values, [1, values.Length, 1, 1], like.dtype, like.device);
}
