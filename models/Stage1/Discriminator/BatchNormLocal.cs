using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// StyleGAN-T's <c>BatchNormLocal</c> on [B,C,L]: statistics per group of <c>virtualBatchSize</c> samples and per channel
/// over the group and the L positions (biased variance), in float32, then a per-channel affine. No running statistics, so
/// train and eval mode agree. With virtual batch size 1 (the DINO discriminator) it is an instance norm.
/// </summary>
public sealed class BatchNormLocal : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly Parameter bias;
    private readonly int _virtualBatchSize;
    private readonly double _eps;

    public BatchNormLocal(long channels, int virtualBatchSize = 1, double eps = 1e-6) : base(nameof(BatchNormLocal))
    {
        if (channels <= 0) throw new ArgumentException($"BatchNormLocal needs a positive channel count, got {channels}");
        if (virtualBatchSize <= 0) throw new ArgumentException($"BatchNormLocal virtual batch size must be positive, got {virtualBatchSize}");
        _virtualBatchSize = virtualBatchSize;
        _eps = eps;
        weight = new Parameter(ones(channels));
        bias = new Parameter(zeros(channels));
        register_parameter(nameof(weight), weight);
        register_parameter(nameof(bias), bias);
    }

    public override Tensor forward(Tensor input)
    {
        if (input.dim() != 3 || input.shape[1] != weight.shape[0])
            throw new ArgumentException($"BatchNormLocal expects [B, {weight.shape[0]}, L], got [{string.Join(", ", input.shape)}]");
        var batch = input.shape[0];
        var groups = (batch + _virtualBatchSize - 1) / _virtualBatchSize;
        if (batch % groups != 0)
            throw new ArgumentException($"BatchNormLocal: batch {batch} does not split into {groups} groups of virtual batch size {_virtualBatchSize}");
        using var scope = NewDisposeScope();
        var grouped = input.to(float32).view(groups, -1, input.shape[1], input.shape[2]);
        var mean = grouped.mean([1, 3], keepdim: true);
        var variance = grouped.var([1L, 3L], unbiased: false, keepdim: true);
        var normalized = (grouped - mean) / (variance + _eps).sqrt();
        var affine = normalized * weight.view(1, -1, 1) + bias.view(1, -1, 1);
        return affine.view(input.shape).MoveToOuterDisposeScope();
    }
}
