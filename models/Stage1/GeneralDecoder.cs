using RAE.Models.Nn;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1;

/// <summary>
/// The RAE pixel decoder (reference <c>stage1.decoders.decoder.GeneralDecoder</c>, spec §3): an HF ViT-MAE decoder
/// with a learned CLS token. Keys: decoder_embed, trainable_cls_token [1,1,D], decoder_pos_embed [1,N+1,D],
/// decoder_layers.{i}.* (<see cref="ViTMaeLayer"/>), decoder_norm, decoder_pred.
/// </summary>
public sealed class GeneralDecoder : nn.Module<Tensor, Tensor>
{
    private readonly Linear decoder_embed;
    private readonly Parameter trainable_cls_token;
    private readonly Parameter decoder_pos_embed;
    private readonly ModuleList<ViTMaeLayer> decoder_layers;
    private readonly LayerNorm decoder_norm;
    private readonly Linear decoder_pred;

    /// <summary>
    /// Builds the decoder with PyTorch-default Linear/LayerNorm init (from <paramref name="generator"/> when given),
    /// a zero CLS token and the sin-cos position table. The table is a parameter (it is in the state dict) created
    /// with requires_grad=false like the reference; training code may enable it (reference quirk §13.5).
    /// </summary>
    public GeneralDecoder(DecoderConfig config, Device? device = null, Generator? generator = null) : base(nameof(GeneralDecoder))
    {
        config.Validate("GeneralDecoder");
        Config = config;
        var width = config.DecoderHiddenSize;
        var activation = Activations.Resolve(config.HiddenAct, "GeneralDecoder");
        decoder_embed = nn.Linear(config.HiddenSize, width);
        trainable_cls_token = new Parameter(zeros(1, 1, width));
        using (var table = SinCosPositionEmbedding.Create2D(width, config.GridSize, withClsRow: true))
            decoder_pos_embed = new Parameter(table.unsqueeze(0), requires_grad: false);
        decoder_layers = new ModuleList<ViTMaeLayer>(Enumerable.Range(0, config.DecoderNumHiddenLayers)
            .Select(_ => new ViTMaeLayer(width, config.DecoderNumAttentionHeads, config.DecoderIntermediateSize,
                config.LayerNormEps, config.QkvBias, activation))
            .ToArray());
        decoder_norm = nn.LayerNorm(width, config.LayerNormEps);
        decoder_pred = nn.Linear(width, config.PixelsPerToken);
        RegisterComponents();
        if (generator is not null) DefaultInitialisation.Apply(this, generator);
        if (device is not null) this.to(device);
    }

    public DecoderConfig Config { get; }

    /// <summary>Tokens [B,N,hidden_size] → per-token pixel logits [B,N',p²·C] (N' = built patch count; CLS dropped).</summary>
    public override Tensor forward(Tensor tokens)
    {
        if (tokens.dim() != 3 || tokens.shape[2] != Config.HiddenSize)
            throw new ArgumentException($"GeneralDecoder expects tokens [B,N,{Config.HiddenSize}], got [{string.Join(",", tokens.shape)}]");
        using var scope = NewDisposeScope();
        // Under a bf16 autocast scope the Linear layers compute in bf16; the residual stream, the norms and the
        // returned logits stay fp32, as under torch.autocast (a bf16 matmul output added to fp32 promotes to fp32).
        var hidden = ResizeTokenGrid(Autocast.Linear(decoder_embed, tokens).to(tokens.dtype));
        var cls = trainable_cls_token.expand(hidden.shape[0], -1, -1);
        hidden = cat([cls, hidden], 1) + decoder_pos_embed;
        foreach (var layer in decoder_layers) hidden = layer.forward(hidden);
        var logits = Autocast.Linear(decoder_pred, decoder_norm.forward(hidden)).to(tokens.dtype);
        return logits[.., 1..].contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>Logits [B,h·w,p²·C] (per token ordered row-in-patch, column-in-patch, channel) → images [B,C,h·p,w·p].</summary>
    public Tensor unpatchify(Tensor logits)
    {
        var p = Config.PatchSize;
        var channels = Config.NumChannels;
        var side = (long)Math.Round(Math.Sqrt(logits.shape[1]));
        if (logits.dim() != 3 || side * side != logits.shape[1] || logits.shape[2] != Config.PixelsPerToken)
            throw new ArgumentException($"unpatchify expects [B, square N, {Config.PixelsPerToken}], got [{string.Join(",", logits.shape)}]");
        var batch = logits.shape[0];
        using var grid = logits.reshape(batch, side, side, p, p, channels);
        using var ordered = grid.permute(0, 5, 1, 3, 2, 4);
        return ordered.reshape(batch, channels, side * p, side * p);
    }

    /// <summary>
    /// A latent of a different resolution is resized as a √N×√N map to the built grid, bilinear, align_corners=False
    /// (spec §3.2 step 2).
    /// </summary>
    private Tensor ResizeTokenGrid(Tensor embedded)
    {
        var tokens = embedded.shape[1];
        if (tokens == Config.NumPatches) return embedded;
        var side = (long)Math.Round(Math.Sqrt(tokens));
        if (side * side != tokens)
            throw new ArgumentException($"GeneralDecoder: {tokens} tokens is not a square grid and differs from the built {Config.NumPatches}");
        var batch = embedded.shape[0];
        var width = embedded.shape[2];
        var map = embedded.transpose(1, 2).reshape(batch, width, side, side);
        var resized = nn.functional.interpolate(map, [Config.GridSize, Config.GridSize], mode: InterpolationMode.Bilinear, align_corners: false);
        return resized.reshape(batch, width, Config.NumPatches).transpose(1, 2);
    }
}
