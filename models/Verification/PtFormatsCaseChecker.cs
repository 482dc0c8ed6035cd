using System.Security.Cryptography;
using System.Text.Json;
using RAE.Models.IO;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the <c>pt_formats</c> case: torch.save files listed in case.json with their sha256. Each file must match its
/// hash and load through <see cref="CheckpointLoader"/>; files whose content is known (the release layouts) are compared
/// tensor by tensor with the sibling case they were saved from (state dicts with its weights.safetensors, stat files
/// with decoder_tiny's latent statistics in io.safetensors).
/// </summary>
public sealed class PtFormatsCaseChecker : IReferenceCaseChecker
{
    private static readonly Dictionary<string, (string Case, bool IsStats)> KnownContents = new(StringComparer.Ordinal)
    {
        ["model.pt"] = ("decoder_tiny", false),
        ["stage2_model.pt"] = ("ddt_tiny", false),
        ["stage2_ckpt_with_ema.pt"] = ("ddt_tiny", false),
        ["stat.pt"] = ("decoder_tiny", true),
        ["stat_batched.pt"] = ("decoder_tiny", true),
    };

    public bool CanCheck(ReferenceCase referenceCase) => ListedCheckpoints(referenceCase).Any();

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        var results = new List<OutputComparison>();
        foreach (var (file, sha256) in ListedCheckpoints(referenceCase))
        {
            var path = referenceCase.PathOf(file);
            var actualHash = HashOf(path);
            if (!string.Equals(actualHash, sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{path}: sha256 {actualHash} differs from case.json's {sha256}");
            if (!KnownContents.TryGetValue(file, out var known))
            {
                using var checkpoint = PyTorchCheckpoint.Open(path);
                continue;
            }
            var siblingDirectory = Path.Combine(Path.GetDirectoryName(referenceCase.Directory.TrimEnd('/', '\\'))!, known.Case);
            if (known.IsStats) results.AddRange(CompareStats(file, path, Path.Combine(siblingDirectory, "io.safetensors"), tolerance));
            else results.AddRange(CompareStateDict(file, path, Path.Combine(siblingDirectory, "weights.safetensors"), tolerance));
        }
        return results;
    }

    private static IEnumerable<OutputComparison> CompareStateDict(string file, string path, string expectedPath, double tolerance)
    {
        var loaded = CheckpointLoader.LoadStateDict(path);
        var expected = SafeTensors.Load(expectedPath);
        try
        {
            var missing = expected.Keys.Except(loaded.Keys).Concat(loaded.Keys.Except(expected.Keys)).ToList();
            if (missing.Count > 0) throw new InvalidDataException($"{path}: keys differ from {expectedPath}: {string.Join(", ", missing)}");
            return expected.Select(entry => OutputComparison.Compare($"{file}:{entry.Key}", loaded[entry.Key], entry.Value, tolerance)).ToList();
        }
        finally
        {
            foreach (var tensor in loaded.Values.Concat(expected.Values)) tensor.Dispose();
        }
    }

    private static IEnumerable<OutputComparison> CompareStats(string file, string path, string ioPath, double tolerance)
    {
        using var stats = CheckpointLoader.LoadLatentStats(path);
        var io = SafeTensors.Load(ioPath);
        try
        {
            return
            [
                OutputComparison.Compare($"{file}:mean", stats.Mean, io["latent_mean"], tolerance),
                OutputComparison.Compare($"{file}:var", stats.Var, io["latent_var"], tolerance),
            ];
        }
        finally
        {
            foreach (var tensor in io.Values) tensor.Dispose();
        }
    }

    private static IEnumerable<(string File, string Sha256)> ListedCheckpoints(ReferenceCase referenceCase)
    {
        if (referenceCase.Root.ValueKind != JsonValueKind.Object) yield break;
        foreach (var property in referenceCase.Root.EnumerateObject())
        {
            if (property.Value.ValueKind == JsonValueKind.String && property.Name.EndsWith(".pt", StringComparison.Ordinal)
                && property.Value.GetString()!.Length == 64 && referenceCase.Has(property.Name))
                yield return (property.Name, property.Value.GetString()!);
        }
    }

    private static string HashOf(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
