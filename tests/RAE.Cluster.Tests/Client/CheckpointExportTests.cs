using System.Security.Cryptography;
using RAE.Client.Commands;
using RAE.GrainInterfaces;
using RAE.Models.IO;
using TorchSharp;

namespace RAE.Cluster.Tests.Client;

public sealed class CheckpointExportTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-export-tests-" + Guid.NewGuid().ToString("N")[..8]);

    public CheckpointExportTests() => Directory.CreateDirectory(_folder);

    public void Dispose()
    {
        try { Directory.Delete(_folder, recursive: true); } catch (IOException) { }
    }

    private CheckpointInfo Payload(params (string Key, float Value)[] tensors)
    {
        var path = Path.Combine(_folder, $"step-{Guid.NewGuid():N}.ckpt");
        using (var scope = torch.NewDisposeScope())
            SafeTensors.Save(path, tensors.Select(t => KeyValuePair.Create(t.Key, torch.full(2, 3, t.Value))));
        var sha = Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));
        return new CheckpointInfo("train-x", 40, path, new FileInfo(path).Length, sha, 0.5, DateTimeOffset.UtcNow);
    }

    private static Dictionary<string, float> Read(string path)
    {
        using var scope = torch.NewDisposeScope();
        return SafeTensors.Load(path).ToDictionary(t => t.Key, t => t.Value[0, 0].item<float>());
    }

    [Theory]
    [InlineData("ema", 2f)]
    [InlineData("model", 1f)]
    public void ExportKeepsThePickedWeightsUnderReferenceKeyNames(string weights, float expected)
    {
        var checkpoint = Payload(("model.x_embedder.proj.weight", 1f), ("ema.x_embedder.proj.weight", 2f), ("ema.t_embedder.mlp.0.bias", 2f), ("optimizer.state.0.exp_avg", 9f));
        var output = Path.Combine(_folder, "out.safetensors");
        Assert.Equal(2 - (weights == "model" ? 1 : 0), CheckpointsExportCommand.Export(checkpoint, weights, weightsExplicit: true, output));
        var exported = Read(output);
        Assert.Equal(expected, exported["x_embedder.proj.weight"]);
        Assert.DoesNotContain(exported.Keys, k => k.StartsWith("ema.", StringComparison.Ordinal) || k.StartsWith("optimizer", StringComparison.Ordinal));
    }

    [Fact]
    public void BareWeightsAreExportedAsTheyAre()
    {
        var checkpoint = Payload(("blocks.0.attn.qkv.weight", 4f), ("final_layer.linear.bias", 5f));
        var output = Path.Combine(_folder, "bare.safetensors");
        Assert.Equal(2, CheckpointsExportCommand.Export(checkpoint, "ema", weightsExplicit: false, output));
        Assert.Equal(new Dictionary<string, float> { ["blocks.0.attn.qkv.weight"] = 4f, ["final_layer.linear.bias"] = 5f }, Read(output));
    }

    [Fact]
    public void CorruptPayloadIsRefusedAndNothingIsWritten()
    {
        var checkpoint = Payload(("ema.w", 1f));
        var bytes = File.ReadAllBytes(checkpoint.Location);
        bytes[^1] ^= 0xFF;
        File.WriteAllBytes(checkpoint.Location, bytes);
        var output = Path.Combine(_folder, "corrupt.safetensors");
        var error = Assert.Throws<RaeJobException>(() => CheckpointsExportCommand.Export(checkpoint, "ema", false, output));
        Assert.Contains("corrupt", error.Message);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void MissingPartIsNamed()
    {
        var checkpoint = Payload(("model.w", 1f));
        var error = Assert.Throws<RaeJobException>(() => CheckpointsExportCommand.Export(checkpoint, "ema", true, Path.Combine(_folder, "none.safetensors")));
        Assert.Contains("'ema.*'", error.Message);
    }
}
