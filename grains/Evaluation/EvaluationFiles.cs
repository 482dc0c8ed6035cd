using System.Globalization;
using RAE.GrainInterfaces;
using RAE.Models.Data;
using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Grains.Evaluation;

/// <summary>
/// What evaluation workers read and write (all on the worker thread): image ranges of an <c>.npz</c> (<c>arr_0</c>, uint8
/// N×H×W×3) or of a dataset's shards (ADM center crop), and the per-unit results (<c>features</c>, or per-image
/// <c>psnr</c>/<c>ssim</c>) as safetensors.
/// </summary>
public static class EvaluationFiles
{
    public const string FeaturesKey = "features";
    public const string PsnrKey = "psnr";
    public const string SsimKey = "ssim";

    /// <summary>Blob of a job's unit result.</summary>
    public static string UnitLocation(string jobId, int unit, EvaluationSide side) =>
        $"evaluations/{jobId}/units/{unit:D6}-{side.ToString().ToLowerInvariant()}.safetensors";

    /// <summary>The cached reference statistics of a dataset for a metric and crop size: <c>mu</c>, <c>sigma</c> (float64).</summary>
    public static string DatasetStatisticsLocation(string dataset, EvaluationMetric metric, int imageSize) =>
        $"datasets/{DatasetNames.Validate(dataset)}/stats/{EvaluationMetrics.NameOf(metric)}-{imageSize.ToString(CultureInfo.InvariantCulture)}.npz";

    /// <summary>What a local <c>.npz</c> holds: images (count, height, width) or FID statistics (<c>mu</c>/<c>sigma</c>).</summary>
    public static (int Images, int Height, int Width, bool HasStatistics) Describe(string file, string source)
    {
        using var reader = NpzReader.Open(file);
        if (reader.Keys.Contains("mu") && reader.Keys.Contains("sigma")) return (0, 0, 0, true);
        if (!reader.Keys.Contains(Npz.ImagesKey))
            throw new RaeJobException($"{source} holds neither images ('{Npz.ImagesKey}') nor FID statistics ('mu' and 'sigma'); its arrays: [{string.Join(", ", reader.Keys)}]");
        var header = reader.GetHeader(Npz.ImagesKey);
        if (header.Dtype != ScalarType.Byte || header.Shape.Length != 4 || header.Shape[3] != 3 || header.FortranOrder)
            throw new RaeJobException($"{source}: '{Npz.ImagesKey}' must be uint8 images N×H×W×3 in C order (as the reference's sample .npz), got {header.Dtype} [{string.Join(", ", header.Shape)}]");
        if (header.Shape[0] == 0) throw new RaeJobException($"{source} holds no images");
        return ((int)header.Shape[0], (int)header.Shape[1], (int)header.Shape[2], false);
    }

    /// <summary>Images [first, first + count) of a local images <c>.npz</c>; <paramref name="first"/> is a multiple of <paramref name="unitSize"/>.</summary>
    public static Tensor ReadNpzRange(string file, int unitSize, int first, int count)
    {
        using var reader = NpzReader.Open(file);
        var index = first / unitSize;
        foreach (var batch in reader.ReadBatches(Npz.ImagesKey, unitSize))
        {
            if (index-- > 0)
            {
                batch.Dispose();
                continue;
            }
            if (batch.shape[0] != count)
            {
                batch.Dispose();
                throw new InvalidDataException($"unit at image {first} should hold {count} images, the file gives {batch.shape[0]}");
            }
            return batch;
        }
        throw new InvalidDataException($"the file has no images from {first} on");
    }

    /// <summary>The shards that hold images [first, first + count) of a dataset, with the part of each that is needed.</summary>
    public static IReadOnlyList<(ShardEntry Shard, int Skip, int Take)> ShardsCovering(DatasetManifest manifest, int first, int count)
    {
        var parts = new List<(ShardEntry, int, int)>();
        var start = 0;
        foreach (var shard in manifest.Shards)
        {
            var from = Math.Max(first, start);
            var to = Math.Min(first + count, start + shard.Images);
            if (from < to) parts.Add((shard, from - start, to - from));
            start += shard.Images;
        }
        return parts;
    }

    /// <summary>The images of the covering shards, decoded, ADM-center-cropped to <paramref name="size"/>, uint8 [n, size, size, 3].</summary>
    public static Tensor DecodeDatasetRange(DatasetManifest manifest, IReadOnlyList<(ShardEntry Shard, int Skip, int Take)> parts,
        IReadOnlyDictionary<string, byte[]> shardBytes, int size)
    {
        var decoder = new SafeImageDecoder();
        var pixels = new List<byte>();
        var images = 0;
        foreach (var (shard, skip, take) in parts)
        {
            var stored = manifest.ReadShard(shard, shardBytes[shard.File]);
            foreach (var image in stored.Skip(skip).Take(take))
            {
                var decoded = decoder.Decode(image.Encoded);
                if (!decoded.Succeeded) throw new InvalidDataException($"dataset '{manifest.Name}': stored image {image.Name} no longer decodes: {decoded.Failure}");
                pixels.AddRange(ImageTransforms.AdmCenterCrop(decoded.Image!, size).Pixels);
                images++;
            }
        }
        return tensor(pixels.ToArray(), [images, size, size, 3], ScalarType.Byte);
    }

    public static byte[] Serialize(IEnumerable<KeyValuePair<string, Tensor>> tensors, EvaluationUnitRequest request)
    {
        using var stream = new MemoryStream();
        SafeTensors.Save(stream, tensors, new Dictionary<string, string>
        {
            ["job"] = request.JobId,
            ["unit"] = request.Unit.ToString(CultureInfo.InvariantCulture),
            ["side"] = request.Side.ToString(),
            ["first"] = request.First.ToString(CultureInfo.InvariantCulture),
        });
        return stream.ToArray();
    }

    /// <summary>One array of a stored unit; the caller owns it.</summary>
    public static Tensor ReadUnit(byte[] bytes, string key, string source)
    {
        using var stream = new MemoryStream(bytes, writable: false);
        var tensors = SafeTensors.Load(stream, source);
        try
        {
            return tensors.Remove(key, out var value) ? value
                : throw new InvalidDataException($"evaluation unit '{source}' holds no '{key}' (it has [{string.Join(", ", tensors.Keys)}])");
        }
        finally
        {
            foreach (var other in tensors.Values) other.Dispose();
        }
    }
}
