using RAE.Models.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage2;

/// <summary>
/// The plain LightningDiT (reference <c>stage2.models.lightningDiT.LightningDiT</c>): patch embed + sin-cos position,
/// blocks conditioned by one vector per sample c = t_emb + y_emb (no SiLU on the sum, unlike DiT^DH), RoPE, final layer.
/// <c>wo_shift=true</c> (a crash in the reference) uses 4·D block modulations without shifts, as in DiT^DH.
/// </summary>
public sealed class LightningDiT : nn.Module
{
    private readonly PatchEmbed x_embedder;
    private readonly GaussianFourierEmbedding t_embedder;
    private readonly LabelEmbedder y_embedder;
    private readonly Parameter pos_embed;
    private readonly VisionRotaryEmbeddingFast? feat_rope;
    private readonly ModuleList<LightningDDTBlock> blocks;
    private readonly FinalLayer final_layer;

    public LightningDiT(LightningDiTOptions options, Generator? generator = null) : base(nameof(LightningDiT))
    {
        options.Validate();
        Options = options;
        x_embedder = new PatchEmbed(options.InputSize, options.PatchSize, options.InChannels, options.HiddenSize);
        t_embedder = new GaussianFourierEmbedding(options.HiddenSize, generator: generator);
        y_embedder = new LabelEmbedder(options.NumClasses, options.HiddenSize, options.ClassDropoutProb);
        pos_embed = new Parameter(zeros(1, x_embedder.NumPatches, options.HiddenSize), requires_grad: false);
        if (options.UseRope) feat_rope = new VisionRotaryEmbeddingFast(options.HiddenSize / options.NumHeads / 2, x_embedder.GridSide);
        blocks = new ModuleList<LightningDDTBlock>();
        for (var i = 0; i < options.Depth; i++)
            blocks.Add(new LightningDDTBlock(options.HiddenSize, options.NumHeads, options.MlpRatio, options.UseQkNorm,
                options.UseSwiGlu, options.UseRmsNorm, options.WoShift));
        final_layer = new FinalLayer(options.HiddenSize, options.PatchSize, options.OutChannels, options.UseRmsNorm);
        RegisterComponents();
        InitializeWeights(generator);
    }

    public LightningDiTOptions Options { get; }

    public long InChannels => Options.InChannels;

    public long NullClass => y_embedder.NullClass;

    /// <summary>Reference init: Xavier-uniform Linear weights with zero biases, then the DiT special inits (see DiTwDDTHead).</summary>
    public void InitializeWeights(Generator? generator = null)
    {
        using var guard = no_grad();
        foreach (var linear in WeightInit.Linears(this))
        {
            WeightInit.XavierUniform(linear.weight!, generator);
            WeightInit.Zero(linear.bias);
        }
        using (var table = SinCosPositionEmbedding.Create2D(Options.HiddenSize, x_embedder.GridSide)) pos_embed.copy_(table.unsqueeze(0));
        WeightInit.XavierUniform(x_embedder.Projection.weight!, generator);
        WeightInit.Zero(x_embedder.Projection.bias);
        WeightInit.Normal(y_embedder.Table, 0.02, generator);
        WeightInit.Normal(t_embedder.FirstLinear.weight!, 0.02, generator);
        WeightInit.Normal(t_embedder.SecondLinear.weight!, 0.02, generator);
        foreach (var block in blocks) WeightInit.Zero(block.ModulationLinear);
        WeightInit.Zero(final_layer.ModulationLinear);
        WeightInit.Zero(final_layer.Output);
    }

    /// <summary>Velocity [B, C, H, W] for x [B, C, H, W], t [B], y [B]; with learn_sigma the sigma half is dropped.</summary>
    public Tensor forward(Tensor x, Tensor t, Tensor y, Generator? labelDropoutGenerator = null)
    {
        if (x.dim() != 4 || t.dim() != 1 || y.dim() != 1 || t.shape[0] != x.shape[0] || y.shape[0] != x.shape[0])
            throw new ArgumentException($"LightningDiT expects x [B, C, H, W], t [B], y [B]; got x [{string.Join(", ", x.shape)}], t [{string.Join(", ", t.shape)}], y [{string.Join(", ", y.shape)}]");
        using var scope = NewDisposeScope();
        var h = x_embedder.forward(x) + pos_embed;
        var condition = t_embedder.forward(t) + y_embedder.forward(y, training, generator: labelDropoutGenerator);
        foreach (var block in blocks) h = block.forward(h, condition, feat_rope);
        var output = DiTwDDTHead.Unpatchify(final_layer.forward(h, condition), Options.PatchSize, Options.OutChannels);
        if (Options.LearnSigma) output = output.slice(1, 0, Options.InChannels, 1);
        return output.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Reference LightningDiT CFG on a doubled batch [cond; uncond]: the first half of x runs twice with the given t, y.
    /// Only t[0] is looked at. <paramref name="noCfgIntervals"/> lists half-open ranges [lo, hi) in which normal CFG is
    /// NOT applied: inside one the output is cond-only, or guided with <paramref name="intervalCfg"/> when it is &gt; 1;
    /// outside all of them it is uncond + cfg_scale·(cond − uncond). Returns [guided; guided]. (The reference's default
    /// interval crashes; here null means no ranges, i.e. CFG everywhere.)
    /// </summary>
    public Tensor ForwardWithCfg(Tensor x, Tensor t, Tensor y, double cfgScale,
        IReadOnlyList<(double Low, double High)>? noCfgIntervals = null, double intervalCfg = 0.0)
    {
        if (x.shape[0] % 2 != 0) throw new ArgumentException($"forward_with_cfg needs an even batch [cond; uncond], got {x.shape[0]}");
        using var scope = NewDisposeScope();
        var half = x.shape[0] / 2;
        var firstHalf = x.slice(0, 0, half, 1);
        var output = forward(cat([firstHalf, firstHalf], 0), t, y);
        var conditional = output.slice(0, 0, half, 1);
        var unconditional = output.slice(0, half, 2 * half, 1);
        var firstTime = t[0].item<float>();
        var insideRange = (noCfgIntervals ?? []).Any(r => firstTime >= r.Low && firstTime < r.High);
        var guided = !insideRange ? unconditional + cfgScale * (conditional - unconditional)
            : intervalCfg > 1 ? unconditional + intervalCfg * (conditional - unconditional)
            : conditional;
        return cat([guided, guided], 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Autoguidance on a doubled batch: the first half (x, t, y) runs through this model and <paramref name="guidanceForward"/>;
    /// per sample with t in [t_min, t_max] (inclusive) guide + scale·(main − guide), else main; returns [v; v].
    /// (Not covered by a reference fixture: the interval rule follows DiT^DH's.)
    /// </summary>
    public Tensor ForwardWithAutoguidance(Tensor x, Tensor t, Tensor y, double cfgScale, Func<Tensor, Tensor, Tensor, Tensor> guidanceForward,
        (double Min, double Max)? cfgInterval = null)
    {
        var (minimum, maximum) = cfgInterval ?? (0, 1);
        if (!(minimum < maximum)) throw new ArgumentException($"cfg_interval needs t_min < t_max, got ({minimum}, {maximum})");
        if (x.shape[0] % 2 != 0) throw new ArgumentException($"forward_with_autoguidance needs an even batch, got {x.shape[0]}");
        using var scope = NewDisposeScope();
        var half = x.shape[0] / 2;
        var (halfX, halfT, halfY) = (x.slice(0, 0, half, 1), t.slice(0, 0, half, 1), y.slice(0, 0, half, 1));
        var main = forward(halfX, halfT, halfY).slice(1, 0, InChannels, 1);
        var guide = guidanceForward(halfX, halfT, halfY).slice(1, 0, InChannels, 1);
        var guided = DiTwDDTHead.GuideInside(halfT, minimum, maximum, guide + cfgScale * (main - guide), main);
        return cat([guided, guided], 0).MoveToOuterDisposeScope();
    }
}
