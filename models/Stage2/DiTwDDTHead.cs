using RAE.Models.Nn;
using RAE.Models.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage2;

/// <summary>
/// DiT^DH (reference <c>stage2.models.DDT.DiTwDDTHead</c>): a deep-narrow DiT encoder whose per-token output conditions a
/// shallow-wide "DDT head" via adaLN. State-dict keys equal the reference's, so released checkpoints load strictly.
/// <para>Where the reference crashes this port works instead (§13 item 6):
/// <c>use_rope=false</c> builds no RoPE modules (and no rope keys) and attends without rotation;
/// <c>wo_shift=true</c> gives every block a 4·D modulation (scale_msa, gate_msa, scale_mlp, gate_mlp) and modulates
/// without a shift, while the final layer keeps its shift/scale;
/// <c>patch_size &gt; 1</c> patch-embeds the <c>in_channels</c>-channel latent with kernel = stride = p (the reference asks
/// for in_channels·p² channels), the final linear emits p²·in_channels values per token and unpatchify folds the p×p
/// patches back (token (i, j), values ordered (row r, column q, channel c) → pixel [c, i·p + r, j·p + q]).</para>
/// </summary>
public sealed class DiTwDDTHead : nn.Module
{
    private readonly Parameter? pos_embed;
    private readonly PatchEmbed x_embedder;
    private readonly PatchEmbed s_embedder;
    private readonly nn.Module<Tensor, Tensor> s_projector;
    private readonly GaussianFourierEmbedding t_embedder;
    private readonly LabelEmbedder y_embedder;
    private readonly VisionRotaryEmbeddingFast? enc_feat_rope;
    private readonly VisionRotaryEmbeddingFast? dec_feat_rope;
    private readonly ModuleList<LightningDDTBlock> blocks;
    private readonly FinalLayer final_layer;

    /// <param name="generator">Source of every random draw (Fourier frequencies, initial weights); null uses the global one.</param>
    public DiTwDDTHead(DiTwDDTHeadOptions options, Generator? generator = null) : base(nameof(DiTwDDTHead))
    {
        options.Validate();
        Options = options;
        var (encoderWidth, decoderWidth) = (options.HiddenSize.Encoder, options.HiddenSize.Decoder);
        s_embedder = new PatchEmbed(options.InputSize, options.PatchSize.Encoder, options.InChannels, encoderWidth);
        x_embedder = new PatchEmbed(options.InputSize, options.PatchSize.Decoder, options.InChannels, decoderWidth);
        s_projector = encoderWidth == decoderWidth ? nn.Identity() : nn.Linear(encoderWidth, decoderWidth);
        t_embedder = new GaussianFourierEmbedding(encoderWidth, generator: generator);
        y_embedder = new LabelEmbedder(options.NumClasses, encoderWidth, options.ClassDropoutProb);
        if (options.UsePosEmbed)
            pos_embed = new Parameter(zeros(1, s_embedder.NumPatches, encoderWidth), requires_grad: false);
        if (options.UseRope)
        {
            enc_feat_rope = new VisionRotaryEmbeddingFast(encoderWidth / options.NumHeads.Encoder / 2, s_embedder.GridSide);
            dec_feat_rope = new VisionRotaryEmbeddingFast(decoderWidth / options.NumHeads.Decoder / 2, x_embedder.GridSide);
        }
        blocks = new ModuleList<LightningDDTBlock>();
        for (var i = 0; i < options.Depth.Encoder + options.Depth.Decoder; i++)
        {
            var isEncoder = i < options.Depth.Encoder;
            blocks.Add(new LightningDDTBlock(
                isEncoder ? encoderWidth : decoderWidth,
                isEncoder ? options.NumHeads.Encoder : options.NumHeads.Decoder,
                options.MlpRatio, options.UseQkNorm, options.UseSwiGlu, options.UseRmsNorm, options.WoShift));
        }
        final_layer = new FinalLayer(decoderWidth, options.PatchSize.Decoder, options.InChannels, options.UseRmsNorm);
        RegisterComponents();
        InitializeWeights(generator);
    }

    public DiTwDDTHeadOptions Options { get; }

    public long InChannels => Options.InChannels;

    /// <summary>The label id of the unconditional (null) class.</summary>
    public long NullClass => y_embedder.NullClass;

    /// <summary>
    /// Reference <c>initialize_weights()</c> (training from scratch): Linear layers PyTorch default, patch-embed convs
    /// Xavier-uniform with zero bias, label table N(0, 0.02), pos_embed sin-cos, t-MLP weights N(0, 0.02), every adaLN
    /// and the output layer zero, norms one. The Fourier frequencies W are drawn by the constructor (N(0, 1)).
    /// </summary>
    public void InitializeWeights(Generator? generator = null)
    {
        using var guard = no_grad();
        foreach (var linear in WeightInit.Linears(this)) WeightInit.PyTorchDefault(linear.weight!, linear.bias, generator);
        foreach (var embed in new[] { s_embedder, x_embedder })
        {
            WeightInit.XavierUniform(embed.Projection.weight!, generator);
            WeightInit.Zero(embed.Projection.bias);
        }
        WeightInit.Normal(y_embedder.Table, 0.02, generator);
        if (pos_embed is not null)
        {
            using var table = SinCosPositionEmbedding.Create2D(Options.HiddenSize.Encoder, s_embedder.GridSide);
            pos_embed.copy_(table.unsqueeze(0));
        }
        WeightInit.Normal(t_embedder.FirstLinear.weight!, 0.02, generator);
        WeightInit.Normal(t_embedder.SecondLinear.weight!, 0.02, generator);
        foreach (var block in blocks) WeightInit.Zero(block.ModulationLinear);
        WeightInit.Zero(final_layer.ModulationLinear);
        WeightInit.Zero(final_layer.Output);
    }

    /// <summary>
    /// Predicted velocity [B, C, H, W] for noisy latents x [B, C, H, W], times t [B] in [0, 1] and labels y [B]
    /// (<see cref="NullClass"/> = unconditional). <paramref name="s"/> is an optional precomputed encoder output (the
    /// tokens before s_projector), skipping the encoder. In training mode labels are dropped with class_dropout_prob,
    /// drawing from <paramref name="labelDropoutGenerator"/> when given.
    /// </summary>
    public Tensor forward(Tensor x, Tensor t, Tensor y, Tensor? s = null, Generator? labelDropoutGenerator = null)
    {
        CheckInputs(x, t, y);
        using var scope = NewDisposeScope();
        var timeEmbedding = t_embedder.forward(t);
        var labelEmbedding = y_embedder.forward(y, training, generator: labelDropoutGenerator);
        var condition = nn.functional.silu(timeEmbedding + labelEmbedding);
        s ??= RunEncoder(x, timeEmbedding, condition);
        var headCondition = s_projector is Linear projector ? Autocast.Linear(projector, s) : s_projector.forward(s);
        var h = x_embedder.forward(x);
        for (var i = Options.Depth.Encoder; i < blocks.Count; i++)
        {
            h = MarkFinished(h, HeadBlockGroup(i));
            h = blocks[i].forward(h, headCondition, dec_feat_rope);
        }
        var output = final_layer.forward(MarkFinished(h, FinalLayerGroup), headCondition);
        return Unpatchify(output, Options.PatchSize.Decoder, Options.InChannels).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Classifier-free guidance on a doubled batch [cond; uncond] (2B): the first half of x is run twice (so both halves
    /// see the same latent) with the given t and y; per sample whose first-half time lies in [t_min, t_max] (inclusive)
    /// the output is uncond + scale·(cond − uncond), else cond; returns [guided; guided] (2B).
    /// </summary>
    public Tensor ForwardWithCfg(Tensor x, Tensor t, Tensor y, double cfgScale, (double Min, double Max)? cfgInterval = null)
    {
        var (minimum, maximum) = cfgInterval ?? (0, 1);
        if (!(minimum < maximum)) throw new ArgumentException($"cfg_interval needs t_min < t_max, got ({minimum}, {maximum})");
        if (x.shape[0] % 2 != 0) throw new ArgumentException($"forward_with_cfg needs an even batch [cond; uncond], got {x.shape[0]}");
        using var scope = NewDisposeScope();
        var half = x.shape[0] / 2;
        var firstHalf = x.slice(0, 0, half, 1);
        var output = forward(cat([firstHalf, firstHalf], 0), t, y);
        var conditional = output.slice(0, 0, half, 1);
        var unconditional = output.slice(0, half, 2 * half, 1);
        var guided = GuideInside(t.slice(0, 0, half, 1), minimum, maximum, unconditional + cfgScale * (conditional - unconditional), conditional);
        return cat([guided, guided], 0).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Autoguidance: runs this model and <paramref name="guidanceForward"/> (x, t, y → velocity) on the same whole batch;
    /// per sample inside [t_min, t_max] (inclusive) returns guide + scale·(main − guide), else main. Same batch size out.
    /// </summary>
    public Tensor ForwardWithAutoguidance(Tensor x, Tensor t, Tensor y, double cfgScale, Func<Tensor, Tensor, Tensor, Tensor> guidanceForward,
        (double Min, double Max)? cfgInterval = null)
    {
        var (minimum, maximum) = cfgInterval ?? (0, 1);
        if (!(minimum < maximum)) throw new ArgumentException($"cfg_interval needs t_min < t_max, got ({minimum}, {maximum})");
        using var scope = NewDisposeScope();
        var main = forward(x, t, y).slice(1, 0, InChannels, 1);
        var guide = guidanceForward(x, t, y).slice(1, 0, InChannels, 1);
        return GuideInside(t, minimum, maximum, guide + cfgScale * (main - guide), main).MoveToOuterDisposeScope();
    }

    /// <summary>Token grid [B, h·w, p·p·C] → latent [B, C, h·p, w·p].</summary>
    public static Tensor Unpatchify(Tensor tokens, long patchSize, long channels)
    {
        using var scope = NewDisposeScope();
        var batch = tokens.shape[0];
        var side = (long)Math.Round(Math.Sqrt(tokens.shape[1]));
        if (side * side != tokens.shape[1]) throw new ArgumentException($"unpatchify: {tokens.shape[1]} tokens do not form a square grid");
        var grid = tokens.reshape(batch, side, side, patchSize, patchSize, channels);
        return grid.permute(0, 5, 1, 3, 2, 4).reshape(batch, channels, side * patchSize, side * patchSize).MoveToOuterDisposeScope();
    }

    internal static Tensor GuideInside(Tensor t, double minimum, double maximum, Tensor guided, Tensor unguided)
    {
        using var scope = NewDisposeScope();
        var inside = t.ge(minimum).logical_and(t.le(maximum)).view(-1, 1, 1, 1);
        return where(inside, guided, unguided).MoveToOuterDisposeScope();
    }

    /// <summary>The encoder output (tokens before s_projector) that <see cref="forward"/> accepts as <c>s</c>.</summary>
    public Tensor Encode(Tensor x, Tensor t, Tensor y, Generator? labelDropoutGenerator = null)
    {
        CheckInputs(x, t, y);
        using var scope = NewDisposeScope();
        var timeEmbedding = t_embedder.forward(t);
        var condition = nn.functional.silu(timeEmbedding + y_embedder.forward(y, training, generator: labelDropoutGenerator));
        return RunEncoder(x, timeEmbedding, condition).MoveToOuterDisposeScope();
    }

    private Tensor RunEncoder(Tensor x, Tensor timeEmbedding, Tensor condition)
    {
        var s = s_embedder.forward(x);
        if (pos_embed is not null) s = s + pos_embed;
        for (var i = 0; i < Options.Depth.Encoder; i++)
        {
            s = MarkFinished(s, EncoderBlockGroup(i));
            s = blocks[i].forward(s, condition, enc_feat_rope);
        }
        return nn.functional.silu(timeEmbedding.unsqueeze(1) + MarkFinished(s, ProjectorGroup));
    }

    private const int FinalLayerGroup = 0;

    private int HeadBlockGroup(int block) => 1 + (blocks.Count - 1 - block);

    private int ProjectorGroup => 1 + Options.Depth.Decoder;

    private int EncoderBlockGroup(int block) => 2 + Options.Depth.Decoder + (Options.Depth.Encoder - 1 - block);

    /// <summary>
    /// The trainable parameters in groups, in the order one backward pass finishes their gradients: the final layer, the
    /// head blocks from last to first, s_projector, the encoder blocks from last to first, then everything else (the
    /// embedders, whose gradients gather from every block and finish last). <see cref="GradientGroupFinished"/> reports
    /// indices into this list. A data-parallel rank lays its flat gradient vector out in this order, so each finished
    /// group extends a finished prefix its all-reduce can take while backward goes on (the order of the gradient
    /// vector only: checkpoints and state dicts keep the reference's parameter order).
    /// </summary>
    public IReadOnlyList<Parameter[]> GradientGroupsInBackwardOrder()
    {
        static Parameter[] Trainable(nn.Module module) => module.parameters().Where(p => p.requires_grad).ToArray();
        var groups = new List<Parameter[]> { Trainable(final_layer) };
        for (var i = blocks.Count - 1; i >= Options.Depth.Encoder; i--) groups.Add(Trainable(blocks[i]));
        groups.Add(Trainable(s_projector));
        for (var i = Options.Depth.Encoder - 1; i >= 0; i--) groups.Add(Trainable(blocks[i]));
        var placed = new HashSet<Parameter>(groups.SelectMany(group => group), ReferenceEqualityComparer.Instance);
        groups.Add(parameters().Where(p => p.requires_grad && !placed.Contains(p)).ToArray());
        return groups;
    }

    /// <summary>
    /// When set, every training forward marks its block boundaries and the backward pass calls this with the index of
    /// each group of <see cref="GradientGroupsInBackwardOrder"/> whose gradients it has finished (on the thread running
    /// backward; the last group is never reported: it finishes with backward itself). Null (the default) adds nothing.
    /// </summary>
    public Action<int>? GradientGroupFinished { get; set; }

    private Tensor MarkFinished(Tensor input, int group) =>
        GradientGroupFinished is { } report ? BackwardProgressMarker.Mark(input, () => report(group)) : input;

    private void CheckInputs(Tensor x, Tensor t, Tensor y)
    {
        if (x.dim() != 4 || x.shape[1] != Options.InChannels || x.shape[2] != Options.InputSize || x.shape[3] != Options.InputSize)
            throw new ArgumentException(
                $"DiTwDDTHead expects x [B, {Options.InChannels}, {Options.InputSize}, {Options.InputSize}], got [{string.Join(", ", x.shape)}]");
        if (t.dim() != 1 || t.shape[0] != x.shape[0]) throw new ArgumentException($"t must be [B={x.shape[0]}], got [{string.Join(", ", t.shape)}]");
        if (y.dim() != 1 || y.shape[0] != x.shape[0]) throw new ArgumentException($"y must be [B={x.shape[0]}], got [{string.Join(", ", y.shape)}]");
    }
}
