using System.CommandLine;
using RAE.Configuration;
using RAE.Models.IO;
using RAE.Models.Onnx;

namespace RAE.Client.Commands;

/// <summary>
/// `rae inspect-file FILE`: reads a checkpoint, array, ONNX model or configuration with the same hardened readers
/// the silos use and prints what it holds. Exit 0 when the file reads, 1 when it is malformed or breaks a reader
/// limit (the message names the file and the limit), 2 on bad usage. Tensor data is not loaded.
/// </summary>
public sealed class InspectFileCommand : ICliCommand
{
    private readonly Argument<string> _file = new("FILE") { Description = "A .pt/.pth/.ckpt, .safetensors, .npz/.npy, .onnx or .yaml file" };

    public InspectFileCommand() =>
        Command = new Command("inspect-file", "Read a checkpoint, array, ONNX model or configuration with the silos' hardened readers and list what it holds") { _file };

    public string Name => "inspect-file";

    public Command Command { get; }

    public Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var path = parsed.GetRequiredValue(_file);
        if (!File.Exists(path)) throw new UsageException($"no such file: {path}");
        try
        {
            foreach (var line in Describe(path)) output.WriteLine(line);
            return Task.FromResult(0);
        }
        catch (Exception problem) when (problem is CheckpointFormatException or ConfigException or InvalidDataException or NotSupportedException)
        {
            error.WriteLine($"rae inspect-file: {problem.Message}");
            return Task.FromResult(1);
        }
    }

    private static IEnumerable<string> Describe(string path)
    {
        var extension = Path.GetExtension(path).ToLowerInvariant();
        switch (extension)
        {
            case ".safetensors":
            {
                using var stream = File.OpenRead(path);
                return SafeTensors.ReadNames(stream, path).Select(name => $"tensor {name}").ToList();
            }
            case ".npz" or ".npy":
            {
                using var reader = NpzReader.Open(path);
                return reader.Keys.Select(key => reader.GetHeader(key)).Zip(reader.Keys)
                    .Select(pair => $"array {pair.Second}: {pair.First.Dtype} [{string.Join(", ", pair.First.Shape)}]").ToList();
            }
            case ".onnx":
            {
                var model = OnnxReader.Load(path);
                return [$"graph {model.Graph.Name}: {model.Graph.Nodes.Count} nodes, {model.Graph.Initializers.Count} initializers"];
            }
            case ".yaml" or ".yml":
            {
                var config = RaeConfig.Load(path);
                return config.ToYaml().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            }
            default:
            {
                using var checkpoint = PyTorchCheckpoint.Open(path);
                return checkpoint.Root is PickleDict dictionary
                    ? [$"torch.save checkpoint: a {dictionary.PythonType} of {dictionary.Count} entries", .. dictionary.Keys.Select(key => $"entry {key}")]
                    : [$"torch.save checkpoint: {checkpoint.Root?.GetType().Name ?? "None"}"];
            }
        }
    }
}
