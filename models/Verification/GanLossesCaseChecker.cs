using RAE.Models.Stage1.Losses;
using static TorchSharp.torch;

namespace RAE.Models.Verification;

/// <summary>
/// Checks the 'gan_losses' reference case: hinge and vanilla discriminator losses and the vanilla generator loss (mean and
/// sum) with their gradients with respect to the logits, the discriminator accuracy, and the 8-bit quantisation of fakes
/// (including the probe values that sit exactly on rounding ties).
/// </summary>
public sealed class GanLossesCaseChecker : IReferenceCaseChecker
{
    public const string CaseName = "gan_losses";

    public bool CanCheck(ReferenceCase referenceCase) =>
        Stage1LossCases.IsCase(referenceCase, CaseName) && referenceCase.Has("io.safetensors");

    public IReadOnlyList<OutputComparison> Check(ReferenceCase referenceCase, double tolerance)
    {
        using var io = new ReferenceTensorFile(referenceCase.PathOf("io.safetensors"));
        using var scope = NewDisposeScope();
        var results = new List<OutputComparison>();
        var real = io["logits_real"];
        var fake = io["logits_fake"];
        foreach (var reduction in new[] { GanLossReduction.Mean, GanLossReduction.Sum })
        {
            var suffix = reduction == GanLossReduction.Mean ? "mean" : "sum";
            CheckLoss(results, io, $"hinge_d_loss.{suffix}", real, fake, (r, f) => GanLosses.HingeDiscriminatorLoss(r, f!, reduction), tolerance);
            CheckLoss(results, io, $"vanilla_d_loss.{suffix}", real, fake, (r, f) => GanLosses.VanillaDiscriminatorLoss(r, f!, reduction), tolerance);
            CheckLoss(results, io, $"vanilla_g_loss.{suffix}", null, fake, (_, f) => GanLosses.VanillaGeneratorLoss(f!, reduction), tolerance);
        }
        if (io.Has("accuracy"))
            results.Add(OutputComparison.Compare("accuracy", GanLosses.Accuracy(real, fake).reshape(1), io["accuracy"], tolerance));

        CheckQuantisation(results, io, "quant", io.Has("quant.recon_disc_normed") ? io["quant.recon_disc"] * 2.0 - 1.0 : null, tolerance);
        CheckQuantisation(results, io, "quant_probe", io.Has("quant_probe.x") ? io["quant_probe.x"] : null, tolerance);
        return results;
    }

    private static void CheckLoss(List<OutputComparison> results, ReferenceTensorFile io, string name, Tensor? real, Tensor fake,
        Func<Tensor, Tensor?, Tensor> loss, double tolerance)
    {
        if (!io.Has(name)) return;
        var realLeaf = real?.detach().clone().requires_grad_(true);
        var fakeLeaf = fake.detach().clone().requires_grad_(true);
        var value = loss(realLeaf!, fakeLeaf);
        results.Add(OutputComparison.Compare(name, value.reshape(1), io[name], tolerance));
        value.backward();
        if (realLeaf is not null && io.Has($"{name}.grad_logits_real"))
            results.Add(OutputComparison.Compare($"{name}.grad_logits_real", realLeaf.grad!, io[$"{name}.grad_logits_real"], tolerance));
        if (io.Has($"{name}.grad_logits_fake"))
            results.Add(OutputComparison.Compare($"{name}.grad_logits_fake", fakeLeaf.grad!, io[$"{name}.grad_logits_fake"], tolerance));
    }

    /// <summary>Quantisation is exact in the reference, so any difference at all fails whatever the tolerance.</summary>
    private static void CheckQuantisation(List<OutputComparison> results, ReferenceTensorFile io, string prefix, Tensor? input, double tolerance)
    {
        if (input is null) return;
        if (io.Has($"{prefix}.recon_disc_normed"))
            results.Add(OutputComparison.Compare($"{prefix}.recon_disc_normed", input, io[$"{prefix}.recon_disc_normed"], tolerance));
        if (io.Has($"{prefix}.fake_detached"))
            results.Add(Stage1LossCases.CompareExactly($"{prefix}.fake_detached", GanLosses.QuantizeTo8BitLevels(input), io[$"{prefix}.fake_detached"], tolerance));
        if (io.Has($"{prefix}.level"))
            results.Add(Stage1LossCases.CompareExactly($"{prefix}.level", GanLosses.QuantizationLevels(input), io[$"{prefix}.level"], tolerance));
    }
}
