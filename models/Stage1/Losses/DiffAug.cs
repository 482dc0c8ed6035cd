using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>
/// DiffAugment as the reference's <c>disc/diffaug.py</c> applies it before the discriminator (spec §4.7): translation,
/// colour and cutout, each gated once per call for the whole batch, with per-sample uniform draws. Every random number
/// comes from an <see cref="IUniformDraws"/>, in the reference's call order: <c>rand(3)</c> for the gates
/// (family on where draw ≤ |prob|), then <c>rand(7,B,1,1)</c> whenever any gate is on, rows translation h, translation w,
/// brightness, saturation, contrast, cutout offset h, cutout offset w. A negative prob enables the families with |prob| but
/// disables cutout; |prob| below 1e-6 returns the input and draws nothing. Gradients flow through every family.
/// </summary>
public sealed class DiffAug
{
    public const double TranslationRatio = 0.125;
    private const double DisabledBelow = 1e-6;

    public DiffAug(double prob, double cutout)
    {
        if (!double.IsFinite(prob)) throw new ArgumentOutOfRangeException(nameof(prob), prob, "DiffAug prob must be finite");
        if (!double.IsFinite(cutout) || cutout < 0 || cutout > 1)
            throw new ArgumentOutOfRangeException(nameof(cutout), cutout, "DiffAug cutout must be a ratio in [0, 1]");
        Prob = prob;
        Cutout = cutout;
    }

    public double Prob { get; }

    public double Cutout { get; }

    /// <summary>Augments images [B,C,H,W] (cast to float32) with draws from <paramref name="draws"/>.</summary>
    public Tensor Apply(Tensor images, IUniformDraws draws)
    {
        if (images.dim() != 4) throw new ArgumentException($"DiffAug expects images [B,C,H,W], got [{string.Join(",", images.shape)}]");
        using var scope = NewDisposeScope();
        var x = images.dtype == float32 ? images.alias() : images.to(float32);
        var probability = Math.Abs(Prob);
        if (probability < DisabledBelow) return x.MoveToOuterDisposeScope();

        var gates = draws.Next([3], images.device).cpu().data<float>().ToArray();
        var translate = gates[0] <= probability;
        var colour = gates[1] <= probability;
        var cut = gates[2] <= probability && Prob > 0;
        if (!(gates[0] <= probability || gates[1] <= probability || gates[2] <= probability)) return x.MoveToOuterDisposeScope();

        var batch = x.shape[0];
        var u = draws.Next([7, batch, 1, 1], images.device);
        if (translate) x = Translate(x, u[0], u[1]);
        if (colour) x = AdjustColour(x, u[2], u[3], u[4]);
        if (cut) x = CutOut(x, u[5], u[6]);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Integer shifts floor(U·(2d+1)) − d with d = round(0.125·size), zero-filled, gathered from a 1-pixel zero pad.</summary>
    private static Tensor Translate(Tensor x, Tensor uh, Tensor uw)
    {
        long batch = x.shape[0], height = x.shape[2], width = x.shape[3];
        var dh = (long)Math.Round(height * TranslationRatio, MidpointRounding.ToEven);
        var dw = (long)Math.Round(width * TranslationRatio, MidpointRounding.ToEven);
        var shiftH = (uh * (2 * dh + 1)).floor().to(int64) - dh;
        var shiftW = (uw * (2 * dw + 1)).floor().to(int64) - dw;
        var grids = meshgrid([arange(batch, dtype: int64, device: x.device), arange(height, dtype: int64, device: x.device),
            arange(width, dtype: int64, device: x.device)], indexing: "ij");
        var rows = (grids[1] + shiftH + 1).clamp(0, height + 1);
        var columns = (grids[2] + shiftW + 1).clamp(0, width + 1);
        var padded = nn.functional.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1);
        return padded.index([TensorIndex.Tensor(grids[0]), TensorIndex.Tensor(rows), TensorIndex.Tensor(columns)]).permute(0, 3, 1, 2);
    }

    /// <summary>Brightness x + (U−0.5), saturation around the per-pixel channel mean ×2U, contrast around the per-sample mean ×(U+0.5).</summary>
    private static Tensor AdjustColour(Tensor x, Tensor brightness, Tensor saturation, Tensor contrast)
    {
        x = x + (brightness.unsqueeze(1) - 0.5);
        var channelMean = x.mean([1], keepdim: true);
        x = (x - channelMean) * (saturation.unsqueeze(1) * 2) + channelMean;
        var sampleMean = x.mean([1, 2, 3], keepdim: true);
        return (x - sampleMean) * (contrast.unsqueeze(1) + 0.5) + sampleMean;
    }

    /// <summary>Zeroes a round(cutout·size) hole centred at floor(U·(size + 1 − hole%2)), clipped to the image, in every channel.</summary>
    private Tensor CutOut(Tensor x, Tensor uh, Tensor uw)
    {
        long batch = x.shape[0], height = x.shape[2], width = x.shape[3];
        var holeH = (long)Math.Round(height * Cutout, MidpointRounding.ToEven);
        var holeW = (long)Math.Round(width * Cutout, MidpointRounding.ToEven);
        if (holeH == 0 || holeW == 0) return x;
        var offsetH = (uh * (height + (1 - holeH % 2))).floor().to(int64);
        var offsetW = (uw * (width + (1 - holeW % 2))).floor().to(int64);
        var grids = meshgrid([arange(batch, dtype: int64, device: x.device), arange(holeH, dtype: int64, device: x.device),
            arange(holeW, dtype: int64, device: x.device)], indexing: "ij");
        var rows = (grids[1] + offsetH - holeH / 2).clamp(0, height - 1);
        var columns = (grids[2] + offsetW - holeW / 2).clamp(0, width - 1);
        var mask = ones([batch, height, width], dtype: x.dtype, device: x.device);
        mask.index_put_(zeros([], dtype: x.dtype, device: x.device), [TensorIndex.Tensor(grids[0]), TensorIndex.Tensor(rows), TensorIndex.Tensor(columns)]);
        return x * mask.unsqueeze(1);
    }
}
