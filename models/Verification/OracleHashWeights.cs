using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>One tensor of a case's <c>hash_init.tensors</c>: its position k, state-dict key, shape, float32 scale and SHA-256.</summary>
public sealed record OracleHashTensorSpec(int K, string Name, long[] Shape, float Scale, string Sha256)
{
    public long ElementCount => Shape.Aggregate(1L, (product, size) => product * size);
}

/// <summary>
/// The <c>oracle-hash-v1</c> rule of the fixtures README: the large conv weights of <c>lpips_vgg</c> and
/// <c>fid_inception</c> are not stored but defined element by element by a SplitMix64-style integer hash. Each generated
/// tensor is checked against its recorded SHA-256 before use, so a generator bug never shows up as a network bug.
/// </summary>
public static class OracleHashWeights
{
    public const string Scheme = "oracle-hash-v1";

    private const ulong Gamma = 0x9E3779B97F4A7C15UL;
    private const ulong TensorMultiplier = 0xD1B54A32D192ED03UL;
    private const ulong Mix1 = 0xBF58476D1CE4E5B9UL;
    private const ulong Mix2 = 0x94D049BB133111EBUL;
    private const float TwoToMinus24 = 1f / 16777216f;

    /// <summary>The finalised hash z of element i of tensor k.</summary>
    public static ulong Hash(ulong seed, int k, long i)
    {
        unchecked
        {
            var z = (seed ^ ((ulong)k * TensorMultiplier)) + ((ulong)i + 1UL) * Gamma;
            z = (z ^ (z >> 30)) * Mix1;
            z = (z ^ (z >> 27)) * Mix2;
            return z ^ (z >> 31);
        }
    }

    /// <summary>The float32 value of element i of tensor k with scale s.</summary>
    public static float Value(ulong seed, int k, long i, float scale)
    {
        var u = (float)(Hash(seed, k, i) >> 40) * TwoToMinus24;
        var v = 2f * u - 1f;
        return v * scale;
    }

    /// <summary>Fills <paramref name="destination"/> with elements 0..n-1 of tensor k.</summary>
    public static void Fill(ulong seed, int k, float scale, Span<float> destination)
    {
        for (var i = 0; i < destination.Length; i++) destination[i] = Value(seed, k, i, scale);
    }

    /// <summary>The SHA-256 (lower-case hex) of float32 little-endian values.</summary>
    public static string Sha256Hex(ReadOnlySpan<float> values) =>
        Convert.ToHexStringLower(SHA256.HashData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values)));

    /// <summary>Reads <c>hash_init</c> of a case.json: the seed and every tensor spec, in order.</summary>
    public static (ulong Seed, IReadOnlyList<OracleHashTensorSpec> Tensors) ReadSpec(JsonElement caseRoot, string nameForErrors)
    {
        if (!caseRoot.TryGetProperty("hash_init", out var hashInit))
            throw new InvalidDataException($"{nameForErrors}: case.json has no hash_init");
        var scheme = hashInit.GetProperty("scheme").GetString();
        if (scheme != Scheme) throw new InvalidDataException($"{nameForErrors}: hash_init.scheme is '{scheme}', expected '{Scheme}'");
        var seedHex = hashInit.GetProperty("seed_hex").GetString()!;
        var seed = ulong.Parse(seedHex.StartsWith("0x", StringComparison.OrdinalIgnoreCase) ? seedHex[2..] : seedHex, NumberStyles.HexNumber,
            CultureInfo.InvariantCulture);
        var tensors = new List<OracleHashTensorSpec>();
        foreach (var entry in hashInit.GetProperty("tensors").EnumerateArray())
        {
            var k = entry.GetProperty("k").GetInt32();
            if (k != tensors.Count) throw new InvalidDataException($"{nameForErrors}: hash_init.tensors[{tensors.Count}] has k = {k}");
            var bits = uint.Parse(entry.GetProperty("scale_bits").GetString()!, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            tensors.Add(new OracleHashTensorSpec(k, entry.GetProperty("name").GetString()!,
                entry.GetProperty("shape").EnumerateArray().Select(size => size.GetInt64()).ToArray(),
                BitConverter.UInt32BitsToSingle(bits), entry.GetProperty("sha256").GetString()!));
        }
        return (seed, tensors);
    }

    /// <summary>
    /// Generates every tensor of a case's <c>hash_init</c>, checks each against its SHA-256 (an <see cref="InvalidDataException"/>
    /// naming the tensor otherwise) and returns them by state-dict key. The caller owns the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> Generate(ReferenceCase referenceCase)
    {
        var (seed, specs) = ReadSpec(referenceCase.Root, referenceCase.Name);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var spec in specs)
            {
                var values = new float[spec.ElementCount];
                Fill(seed, spec.K, spec.Scale, values);
                var hash = Sha256Hex(values);
                if (!string.Equals(hash, spec.Sha256, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException(
                        $"{referenceCase.Name}: generated tensor k={spec.K} '{spec.Name}' has sha256 {hash}, case.json says {spec.Sha256}");
                result.Add(spec.Name, tensor(values, spec.Shape));
            }
            return result;
        }
        catch
        {
            foreach (var generated in result.Values) generated.Dispose();
            throw;
        }
    }

    /// <summary>A case's full state dict: <c>weights.safetensors</c> plus the generated tensors (no key may be in both).</summary>
    public static Dictionary<string, Tensor> LoadFullStateDict(ReferenceCase referenceCase)
    {
        var stored = IO.SafeTensors.Load(referenceCase.PathOf("weights.safetensors"));
        Dictionary<string, Tensor> generated;
        try
        {
            generated = Generate(referenceCase);
        }
        catch
        {
            foreach (var tensor in stored.Values) tensor.Dispose();
            throw;
        }
        var both = generated.Keys.Where(stored.ContainsKey).ToList();
        if (both.Count > 0)
        {
            foreach (var tensor in stored.Values.Concat(generated.Values)) tensor.Dispose();
            throw new InvalidDataException($"{referenceCase.Name}: {string.Join(", ", both)} both stored and generated");
        }
        foreach (var (name, tensor) in generated) stored.Add(name, tensor);
        return stored;
    }
}
