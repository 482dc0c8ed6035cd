using RAE.Models.IO;

namespace RAE.Models.Tests;

public sealed class CheckpointPartsTests
{
    [Fact]
    public void ThePartIsPickedWhenPresentAndBareWeightsAreTakenAsTheyAre()
    {
        string[] state = ["model.w", "ema.w", "optimizer.exp_avg.w", "trainer.step"];
        Assert.Equal("ema.", CheckpointParts.SelectPrefix(state, "ema", partExplicit: false, "state"));
        Assert.Equal("model.", CheckpointParts.SelectPrefix(state, "model", partExplicit: true, "state"));
        Assert.Equal("", CheckpointParts.SelectPrefix(["blocks.0.attn.qkv.weight", "final_layer.linear.bias"], "ema", partExplicit: false, "weights"));
    }

    [Fact]
    public void AMissingPartIsRefusedByName()
    {
        var missing = Assert.Throws<MissingCheckpointPartException>(() => CheckpointParts.SelectPrefix(["model.w", "trainer.step"], "ema", false, "checkpoint of job 'j'"));
        Assert.Contains("checkpoint of job 'j' holds no 'ema.*' tensors", missing.Message);
        Assert.Contains("model.w", missing.Message);
        Assert.Throws<MissingCheckpointPartException>(() => CheckpointParts.SelectPrefix(["blocks.0.w"], "model", partExplicit: true, "weights"));
    }
}
