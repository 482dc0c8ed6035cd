using RAE.Models.Stage1;
using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <param name="ImageSize">Side of the ADM center crop, the encoder's input size (no resize afterwards).</param>
/// <param name="BatchSize">Images per encoder call; batches are cut from the start of each shard, so a shard's latents never
/// depend on which worker or silo encodes it.</param>
/// <param name="Flip">Also encode the horizontal mirrors (<see cref="LatentShard.FlippedKey"/>).</param>
/// <param name="StoreBFloat16">Store the latents as bfloat16 (computed in float32, rounded once when stored).</param>
public sealed record ShardEncoderOptions(int ImageSize, int BatchSize = 32, bool Flip = false, bool StoreBFloat16 = false)
{
    public string DTypeName => StoreBFloat16 ? "bfloat16" : "float32";

    public void Validate()
    {
        if (ImageSize <= 0) throw new ArgumentOutOfRangeException(nameof(ImageSize), $"the image size must be positive, got {ImageSize}");
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), $"the encode batch size must be positive, got {BatchSize}");
    }
}

/// <summary>
/// One image shard turned into its latent shard: the safetensors bytes (<see cref="LatentShard"/>), how many images it
/// holds per class, the images that were skipped with the reason, and the exact moments of the stored latents (both
/// views when flips are stored), which the caller owns.
/// </summary>
public sealed record EncodedShard(byte[] Bytes, int Count, IReadOnlyList<int> CountsPerClass, IReadOnlyList<SkippedImage> Skipped, LatentMoments Moments)
    : IDisposable
{
    public void Dispose() => Moments.Dispose();
}

/// <summary>
/// Turns an image shard into a latent shard the way the reference's Stage 2 data and RAE encode do (spec §2.2, §9.3):
/// decode under the <see cref="SafeImageDecoder"/> limits (a bad image is skipped and reported, never thrown), ADM center
/// crop to the encoder's input size, ToTensor, normalise with the encoder's mean and std, encode in eval mode (no
/// <c>noise_tau</c> noise: that is Stage 1 training only), tokens to the <c>[C, h, w]</c> grid. The latents are the raw
/// encoder output (no latent normalisation: the statistics are computed from them). Runs on the caller's thread.
/// </summary>
public sealed class ShardEncoder
{
    private readonly IRepresentationEncoder _encoder;
    private readonly SafeImageDecoder _decoder;
    private readonly Device _device;
    private readonly float[] _mean;
    private readonly float[] _std;

    public ShardEncoder(IRepresentationEncoder encoder, ShardEncoderOptions options, SafeImageDecoder? decoder = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.ImageSize % encoder.PatchSize != 0)
            throw new ArgumentException($"the image size {options.ImageSize} is not a multiple of the encoder's patch size {encoder.PatchSize}");
        _encoder = encoder;
        Options = options;
        _decoder = decoder ?? new SafeImageDecoder();
        _device = device ?? CPU;
        _mean = encoder.ImageMean.ToArray();
        _std = encoder.ImageStd.ToArray();
        var side = options.ImageSize / encoder.PatchSize;
        LatentShape = [encoder.HiddenSize, side, side];
    }

    public ShardEncoderOptions Options { get; }

    /// <summary><c>[C, h, w]</c> of one latent.</summary>
    public long[] LatentShape { get; }

    /// <summary>Encodes every image of the shard that decodes; labels must lie in [0, <paramref name="classCount"/>). A
    /// cancelled <paramref name="cancellationToken"/> stops it before the next encoder batch.</summary>
    public EncodedShard Encode(IReadOnlyList<ShardImage> images, int classCount, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (classCount <= 0) throw new ArgumentOutOfRangeException(nameof(classCount), $"a dataset needs at least one class, got {classCount}");
        var (latents, flipped, labels, counts, skipped) = EncodeTensors(images, classCount, cancellationToken);
        // Outside any dispose scope: the moments outlive this call and belong to the caller.
        var moments = LatentMoments.Empty(LatentShape);
        try
        {
            if (labels.Length > 0)
            {
                moments.Add(latents);
                if (flipped is not null) moments.Add(flipped);
            }
            return new EncodedShard(LatentShard.Write(latents, labels, flipped), labels.Length, counts, skipped, moments);
        }
        catch
        {
            moments.Dispose();
            throw;
        }
        finally
        {
            latents.Dispose();
            flipped?.Dispose();
        }
    }

    private (Tensor Latents, Tensor? Flipped, long[] Labels, int[] Counts, List<SkippedImage> Skipped) EncodeTensors(IReadOnlyList<ShardImage> images,
        int classCount, CancellationToken cancellationToken)
    {
        using var scope = NewDisposeScope();
        var skipped = new List<SkippedImage>();
        var pixels = new List<Tensor>();
        var labels = new List<long>();
        var counts = new int[classCount];
        foreach (var image in images)
        {
            if (image.Label < 0 || image.Label >= classCount)
                throw new InvalidDataException($"image {image.Name} has label {image.Label}, outside the dataset's {classCount} classes");
            var decoded = _decoder.Decode(image.Encoded);
            if (!decoded.Succeeded)
            {
                skipped.Add(new SkippedImage(image.Name, decoded.Failure!));
                continue;
            }
            pixels.Add(ImageTransforms.AdmCenterCrop(decoded.Image!, Options.ImageSize).ToTensor());
            labels.Add(image.Label);
            counts[image.Label]++;
        }
        var dtype = Options.StoreBFloat16 ? ScalarType.BFloat16 : ScalarType.Float32;
        Tensor latents;
        Tensor? flipped = null;
        if (pixels.Count == 0)
        {
            latents = zeros([0, .. LatentShape], dtype);
            if (Options.Flip) flipped = zeros([0, .. LatentShape], dtype);
        }
        else
        {
            var batch = stack(pixels);
            latents = EncodeImages(batch, cancellationToken).to(dtype);
            if (Options.Flip) flipped = EncodeImages(ShardImageBatch.Flipped(batch), cancellationToken).to(dtype);
        }
        return (latents.MoveToOuterDisposeScope(), flipped?.MoveToOuterDisposeScope(), labels.ToArray(), counts, skipped);
    }

    /// <summary>Images <c>[n, 3, S, S]</c> in [0, 1] → float32 latents <c>[n, C, h, w]</c> on the CPU, in batches of <see cref="ShardEncoderOptions.BatchSize"/>.</summary>
    public Tensor EncodeImages(Tensor images, CancellationToken cancellationToken = default)
    {
        if (images.dim() != 4 || images.shape[1] != 3 || images.shape[2] != Options.ImageSize || images.shape[3] != Options.ImageSize)
            throw new ArgumentException($"images must be [n, 3, {Options.ImageSize}, {Options.ImageSize}], got [{string.Join(", ", images.shape)}]");
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var mean = tensor(_mean, [1, 3, 1, 1], ScalarType.Float32, _device);
        var std = tensor(_std, [1, 3, 1, 1], ScalarType.Float32, _device);
        var parts = new List<Tensor>();
        for (long start = 0; start < images.shape[0]; start += Options.BatchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var length = Math.Min(Options.BatchSize, images.shape[0] - start);
            var normalised = images.narrow(0, start, length).to(ScalarType.Float32, _device).sub(mean).div_(std);
            var tokens = _encoder.Encode(normalised);
            parts.Add(RepresentationAutoencoder.TokensToGrid(tokens).to(ScalarType.Float32, CPU).contiguous());
        }
        return cat(parts, 0).MoveToOuterDisposeScope();
    }
}
