using RAE.Models.IO;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace RAE.Grains.Sampling;

/// <summary>The bytes a unit leaves in blob storage: one safetensors file (<c>images</c> or <c>latents</c>, plus <c>labels</c>) and PNGs.</summary>
public static class SamplingUnitFiles
{
    public const string ImagesKey = "images";
    public const string LatentsKey = "latents";
    public const string LabelsKey = "labels";

    public static byte[] Serialize(SamplingUnitOutput output, int unit, int firstIndex, long seed)
    {
        var tensors = new List<KeyValuePair<string, Tensor>> { new(LabelsKey, output.Labels) };
        if (output.Images is not null) tensors.Add(new(ImagesKey, output.Images));
        if (output.Latents is not null) tensors.Add(new(LatentsKey, output.Latents));
        using var stream = new MemoryStream();
        SafeTensors.Save(stream, tensors, new Dictionary<string, string>
        {
            ["unit"] = unit.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["first_index"] = firstIndex.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["seed"] = seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        return stream.ToArray();
    }

    /// <summary>The images of a stored unit [n,H,W,3] uint8; the caller owns the tensor.</summary>
    public static Tensor ReadImages(byte[] unitBytes, string source)
    {
        using var stream = new MemoryStream(unitBytes, writable: false);
        var tensors = SafeTensors.Load(stream, source);
        if (!tensors.Remove(ImagesKey, out var images))
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
            throw new InvalidDataException($"unit result '{source}' holds no '{ImagesKey}' (it keeps latents, so it cannot go into an image .npz)");
        }
        foreach (var tensor in tensors.Values) tensor.Dispose();
        return images;
    }

    /// <summary>PNG bytes of every image of a uint8 batch [n,H,W,3].</summary>
    public static IReadOnlyList<byte[]> EncodePngs(Tensor images)
    {
        if (images.dim() != 4 || images.shape[3] != 3 || images.dtype != ScalarType.Byte)
            throw new ArgumentException($"expected uint8 images [n,H,W,3], got {images.dtype} [{string.Join(",", images.shape)}]");
        var (n, height, width) = ((int)images.shape[0], (int)images.shape[1], (int)images.shape[2]);
        var pixels = images.contiguous().data<byte>().ToArray();
        var perImage = height * width * 3;
        var pngs = new List<byte[]>(n);
        for (var i = 0; i < n; i++)
        {
            using var image = Image.LoadPixelData<Rgb24>(pixels.AsSpan(i * perImage, perImage), width, height);
            using var stream = new MemoryStream();
            image.SaveAsPng(stream);
            pngs.Add(stream.ToArray());
        }
        return pngs;
    }
}
