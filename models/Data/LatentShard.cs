using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Data;

/// <summary>
/// One shard of encoded latents as a safetensors file: <c>latents</c> <c>[n, C, H, W]</c> (float32 or bfloat16),
/// <c>labels</c> int64 <c>[n]</c>, and <c>latents_flipped</c> (the latents of the mirrored images) when the encode job
/// was asked for both flips.
/// </summary>
public sealed class LatentShard : IDisposable
{
    public const string LatentsKey = "latents";
    public const string LabelsKey = "labels";
    public const string FlippedKey = "latents_flipped";

    private LatentShard(Tensor latents, Tensor labels, Tensor? flipped)
    {
        Latents = latents;
        Labels = labels;
        FlippedLatents = flipped;
    }

    public Tensor Latents { get; }

    public Tensor Labels { get; }

    public Tensor? FlippedLatents { get; }

    public long Count => Latents.shape[0];

    public static byte[] Write(Tensor latents, long[] labels, Tensor? flippedLatents = null)
    {
        Check(latents, labels.LongLength, flippedLatents, "latent shard being written", null);
        using var labelTensor = tensor(labels, ScalarType.Int64);
        var entries = new List<KeyValuePair<string, Tensor>> { new(LatentsKey, latents), new(LabelsKey, labelTensor) };
        if (flippedLatents is not null) entries.Add(new(FlippedKey, flippedLatents));
        using var output = new MemoryStream();
        SafeTensors.Save(output, entries);
        return output.ToArray();
    }

    /// <summary>Reads a shard and checks that its latents have <paramref name="expectedLatentShape"/> (<c>[C, H, W]</c>) when given.</summary>
    public static LatentShard Read(byte[] bytes, string nameForErrors, long[]? expectedLatentShape = null)
    {
        using var input = new MemoryStream(bytes, writable: false);
        var entries = SafeTensors.Load(input, nameForErrors);
        try
        {
            if (!entries.TryGetValue(LatentsKey, out var latents) || !entries.TryGetValue(LabelsKey, out var labels))
                throw new InvalidDataException($"{nameForErrors} is not a latent shard (it needs '{LatentsKey}' and '{LabelsKey}'; has {string.Join(", ", entries.Keys)})");
            entries.TryGetValue(FlippedKey, out var flipped);
            if (labels.dtype != ScalarType.Int64 || labels.dim() != 1)
                throw new InvalidDataException($"{nameForErrors}: '{LabelsKey}' must be int64 [n], got {labels.dtype} [{string.Join(", ", labels.shape)}]");
            Check(latents, labels.shape[0], flipped, nameForErrors, expectedLatentShape);
            foreach (var (key, tensor) in entries)
                if (key is not (LatentsKey or LabelsKey or FlippedKey)) tensor.Dispose();
            return new LatentShard(latents, labels, flipped);
        }
        catch
        {
            foreach (var tensor in entries.Values) tensor.Dispose();
            throw;
        }
    }

    private static void Check(Tensor latents, long labelCount, Tensor? flipped, string nameForErrors, long[]? expectedLatentShape)
    {
        if (latents.dim() < 2 || !latents.is_floating_point())
            throw new InvalidDataException($"{nameForErrors}: latents must be floating point [n, C, H, W], got {latents.dtype} [{string.Join(", ", latents.shape)}]");
        if (latents.shape[0] != labelCount)
            throw new InvalidDataException($"{nameForErrors}: {latents.shape[0]} latents but {labelCount} labels");
        if (flipped is not null && !flipped.shape.SequenceEqual(latents.shape))
            throw new InvalidDataException($"{nameForErrors}: flipped latents [{string.Join(", ", flipped.shape)}] differ from latents [{string.Join(", ", latents.shape)}]");
        if (expectedLatentShape is not null && !latents.shape.Skip(1).SequenceEqual(expectedLatentShape))
            throw new InvalidDataException(
                $"{nameForErrors}: latents are [{string.Join(", ", latents.shape.Skip(1))}] but the config expects [{string.Join(", ", expectedLatentShape)}] (misc.latent_size)");
    }

    public void Dispose()
    {
        Latents.Dispose();
        Labels.Dispose();
        FlippedLatents?.Dispose();
    }
}
