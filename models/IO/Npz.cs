using static TorchSharp.torch;

namespace RAE.Models.IO;

/// <summary>FID reference statistics: the mean (<c>mu</c>, [D]) and covariance (<c>sigma</c>, [D, D]) of Inception features, float64.</summary>
public sealed class FidStatistics(Tensor mu, Tensor sigma) : IDisposable
{
    public Tensor Mu { get; } = mu;

    public Tensor Sigma { get; } = sigma;

    public void Dispose()
    {
        Mu.Dispose();
        Sigma.Dispose();
    }
}

/// <summary>The .npz layouts the reference uses (§8.2, §8.5, §10.2): uint8 NHWC images in <c>arr_0</c>, FID moments in <c>mu</c> / <c>sigma</c>.</summary>
public static class Npz
{
    public const string ImagesKey = "arr_0";

    /// <summary>Starts an images file ([N, height, width, channels] uint8 in <c>arr_0</c>) to be filled batch by batch.</summary>
    public static ImageNpzWriter BeginImages(string path, long height, long width, long channels = 3, DateTime? timestamp = null) =>
        new(path, height, width, channels, timestamp);

    /// <summary>Writes arrays as <c>{key}.npy</c> entries, in order, atomically.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> arrays)
    {
        using var writer = NpzWriter.Create(path);
        foreach (var (key, array) in arrays) writer.WriteArray(key, array);
        writer.Complete();
    }

    /// <summary>Reads every array onto the CPU. The caller owns the tensors.</summary>
    public static Dictionary<string, Tensor> Load(string path) => NpzReader.LoadAll(path);

    /// <summary>Reads FID moments (as float64) and checks that their shapes fit together.</summary>
    public static FidStatistics LoadFidStatistics(string path, string muKey = "mu", string sigmaKey = "sigma")
    {
        using var reader = NpzReader.Open(path);
        using var mu = reader.ReadArray(muKey);
        using var sigma = reader.ReadArray(sigmaKey);
        if (mu.dim() != 1 || sigma.dim() != 2 || sigma.shape[0] != mu.shape[0] || sigma.shape[1] != mu.shape[0])
            throw new CheckpointFormatException(path,
                $"'{muKey}' [{string.Join(", ", mu.shape)}] and '{sigmaKey}' [{string.Join(", ", sigma.shape)}] are not a [D] mean and a [D, D] covariance");
        if (!mu.is_floating_point() || !sigma.is_floating_point())
            throw new CheckpointFormatException(path, $"FID moments must be floating point, found {mu.dtype} and {sigma.dtype}");
        return new FidStatistics(mu.to(ScalarType.Float64), sigma.to(ScalarType.Float64));
    }
}

/// <summary>
/// Streams uint8 NHWC images into <c>arr_0</c> of an .npz, exactly as the reference's <c>np.savez(path, arr_0=…)</c>
/// lays it out, without holding all images in memory. Call <see cref="Complete"/> to publish the file; disposing
/// without completing discards it.
/// </summary>
public sealed class ImageNpzWriter : IDisposable
{
    private readonly NpzWriter _writer;
    private readonly NpyArrayStream _images;
    private bool _closed;

    internal ImageNpzWriter(string path, long height, long width, long channels, DateTime? timestamp = null)
    {
        _writer = NpzWriter.Create(path, timestamp);
        _images = _writer.BeginArray(Npz.ImagesKey, ScalarType.Byte, [height, width, channels]);
    }

    public long Count => _images.Count;

    /// <summary>Appends a uint8 batch [n, height, width, channels].</summary>
    public void Append(Tensor images) => _images.Append(images);

    public void Complete()
    {
        ObjectDisposedException.ThrowIf(_closed, this);
        _closed = true;
        _images.Dispose();
        _writer.Complete();
    }

    public void Dispose()
    {
        if (!_closed)
        {
            _closed = true;
            _images.Dispose();
        }
        _writer.Dispose();
    }
}
