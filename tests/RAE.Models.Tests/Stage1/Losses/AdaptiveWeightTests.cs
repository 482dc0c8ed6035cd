using RAE.Models.Stage1.Losses;
using RAE.Models.Verification;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Stage1.Losses;

public sealed class AdaptiveWeightTests
{
    [Fact]
    public void AdaptiveWeightCaseMatchesBothVariants()
    {
        var results = ReferenceVerifier.CreateDefault().Verify(Fixtures.Case("adaptive_weight"));
        var expected = new List<string>();
        foreach (var variant in new[] { "base", "full" })
            expected.AddRange(new[] { "recon", "rec_loss", "lpips_loss", "recon_total", "fake_aug", "logits_fake", "gan_loss", "recon_grads", "gan_grads",
                "recon_grad_norm", "gan_grad_norm", "adaptive_weight", "total_loss", "clamped.adaptive_weight", "clamped.total_loss",
                "grad.decoder_pos_embed", "grad.decoder_pred.weight", "grad.decoder_layers.1.attention.attention.key.bias" }.Select(o => $"{variant}.{o}"));
        Stage1LossAssertions.AssertAllPass(results, expected.ToArray());
        Assert.Equal(2 * 40, results.Count(r => r.Name.Contains(".grad.", StringComparison.Ordinal)));
    }

    [Fact]
    public void WeightIsTheRatioOfGradientNormsClampedAndDetached()
    {
        using var w = tensor(new[] { 1f, 2f }).requires_grad_(true);
        using var recon = (w * tensor(new[] { 3f, 4f })).sum();   // gradient (3, 4), norm 5
        using var gan = (w * tensor(new[] { 0f, 2f })).sum();     // gradient (0, 2), norm 2
        using var result = AdaptiveWeight.Compute(recon, gan, w, 1e4);
        Assert.Equal(5.0 / (2.0 + 1e-6), result.Weight.item<float>(), 5);
        Assert.False(result.Weight.requires_grad);
        using var clamped = AdaptiveWeight.Compute(recon, gan, w, 1.5);
        Assert.Equal(1.5f, clamped.Weight.item<float>());
    }

    [Fact]
    public void AFrozenLastLayerIsAnError()
    {
        using var w = tensor(new[] { 1f, 2f });
        using var loss = w.sum();
        Assert.Throws<ArgumentException>(() => AdaptiveWeight.Compute(loss, loss, w, 1e4));
    }
}
