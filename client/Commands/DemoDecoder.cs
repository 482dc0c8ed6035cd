using System.Text.Json;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Stage1;
using static TorchSharp.torch;

namespace RAE.Client.Commands;

/// <summary>
/// The Stage 1 decoder of `rae demo`. When the configuration's stage_1 names a decoder architecture
/// (<c>decoder_config_path</c>) but no weights (<c>pretrained_decoder_path</c>), the demo writes a <see cref="GeneralDecoder"/>
/// with seeded PyTorch-default weights to <c>&lt;data&gt;/stage1/decoder.safetensors</c>, so the sampling job decodes
/// its latents to PNGs and the FID <c>.npz</c>. Such a decoder was never trained: its images are noise-like.
/// </summary>
public static class DemoDecoder
{
    /// <summary>Where the generated weights go, relative to the demo's data folder.</summary>
    public static readonly string RelativeWeightsPath = Path.Combine("stage1", "decoder.safetensors");

    /// <summary>Seed of the generated weights: every demo run writes the same decoder.</summary>
    public const ulong Seed = 0;

    /// <summary>
    /// The configuration the demo samples with, its stage_1 paths made absolute (a relative path is taken from the working
    /// directory, else from the first folder above the config file that has it), plus the decoder it uses. A configuration
    /// without stage_1 comes back unchanged, with no decoder. Throws <see cref="ConfigException"/> naming the key and path
    /// of a missing or unusable file.
    /// </summary>
    public static (RaeConfig Config, DemoDecoderInfo? Decoder) Prepare(RaeConfig config, string configPath, string dataFolder)
    {
        if (config.Stage1?.Params is not { } stage1) return (config, null);
        var architecturePath = ResolveDecoderConfig(config, configPath, stage1.DecoderConfigPath);
        DecoderConfig architecture;
        try
        {
            var latent = config.Misc.LatentSize;
            architecture = DecoderConfig.FromFile(architecturePath).WithRaeOverrides(latent[0], stage1.DecoderPatchSize, latent[1] * latent[2]);
        }
        catch (Exception problem) when (problem is InvalidDataException or ArgumentException or JsonException)
        {
            throw new ConfigException(config.SourceName, "stage_1.params.decoder_config_path", null, $"{architecturePath} is not a usable decoder config: {problem.Message}", problem);
        }

        var overrides = new List<string> { Assignment("decoder_config_path", architecturePath) };
        string weightsPath;
        var generated = stage1.PretrainedDecoderPath is null;
        if (generated)
        {
            weightsPath = Path.Combine(dataFolder, RelativeWeightsPath);
            WriteSeededWeights(architecture, weightsPath);
        }
        else
        {
            weightsPath = ResolveExisting(config, configPath, "stage_1.params.pretrained_decoder_path", stage1.PretrainedDecoderPath!);
        }
        overrides.Add(Assignment("pretrained_decoder_path", weightsPath));
        if (stage1.NormalizationStatPath is { } statistics)
            overrides.Add(Assignment("normalization_stat_path", ResolveExisting(config, configPath, "stage_1.params.normalization_stat_path", statistics)));
        return (config.WithOverrides(overrides), new DemoDecoderInfo(weightsPath, generated, architecture));
    }

    /// <summary>
    /// Builds the decoder with PyTorch-default initialisation drawn from a generator seeded with <see cref="Seed"/> and saves
    /// its state dict (keys without a <c>decoder.</c> prefix) as safetensors, through a temporary file so that an interrupted
    /// run never leaves half a file.
    /// </summary>
    public static void WriteSeededWeights(DecoderConfig architecture, string path)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temporary = path + ".tmp";
        using (var generator = new Generator(Seed))
        using (var decoder = new GeneralDecoder(architecture, generator: generator))
            SafeTensors.Save(temporary, decoder.state_dict());
        File.Move(temporary, path, overwrite: true);
    }

    /// <summary>decoder_config_path names a config.json or, as in the reference configs, a folder holding one.</summary>
    internal static string ResolveDecoderConfig(RaeConfig config, string configPath, string? decoderConfigPath)
    {
        const string key = "stage_1.params.decoder_config_path";
        if (decoderConfigPath is null)
            throw new ConfigException(config.SourceName, key, null, "is not set; the demo builds its Stage 1 decoder from it (a ViT-MAE style config.json, or a folder holding one)");
        var path = Resolve(configPath, decoderConfigPath, candidate => File.Exists(candidate) || File.Exists(Path.Combine(candidate, "config.json")));
        path = DecoderConfig.ResolveConfigFile(path);
        return File.Exists(path) ? path
            : throw new ConfigException(config.SourceName, key, null, $"'{decoderConfigPath}' is neither a config.json nor a folder holding one (looked for {path})");
    }

    private static string ResolveExisting(RaeConfig config, string configPath, string key, string path)
    {
        var resolved = Resolve(configPath, path, File.Exists);
        return File.Exists(resolved) ? resolved : throw new ConfigException(config.SourceName, key, null, $"file not found: {resolved}");
    }

    /// <summary>An absolute path as is; a relative one from the working directory, else from the nearest folder above the config that has it.</summary>
    private static string Resolve(string configPath, string path, Func<string, bool> exists)
    {
        if (Path.IsPathRooted(path) || exists(Path.GetFullPath(path))) return Path.GetFullPath(path);
        for (var folder = new FileInfo(configPath).Directory; folder is not null; folder = folder.Parent)
        {
            var candidate = Path.Combine(folder.FullName, path);
            if (exists(candidate)) return Path.GetFullPath(candidate);
        }
        return Path.GetFullPath(path);
    }

    /// <summary>A --set assignment; the path as a JSON string is a double-quoted YAML scalar, safe for any character.</summary>
    private static string Assignment(string key, string path) => $"stage_1.params.{key}={JsonSerializer.Serialize(path)}";
}

/// <summary>The decoder `rae demo` samples with: its weights file, whether the demo generated it, and its architecture.</summary>
public sealed record DemoDecoderInfo(string WeightsPath, bool Generated, DecoderConfig Architecture)
{
    /// <summary>Side of the decoded images in pixels.</summary>
    public int ImageSize => Architecture.ImageSize;
}
