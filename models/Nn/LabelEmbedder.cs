using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Nn;

/// <summary>
/// Class-label embedding with classifier-free-guidance dropout. With dropout_prob &gt; 0 the table has num_classes + 1 rows;
/// row num_classes is the null (unconditional) class.
/// </summary>
public sealed class LabelEmbedder : nn.Module
{
    private readonly Embedding embedding_table;

    public LabelEmbedder(long numClasses, long hiddenSize, double dropoutProbability) : base(nameof(LabelEmbedder))
    {
        if (numClasses <= 0) throw new ArgumentException($"num_classes must be positive, got {numClasses}", nameof(numClasses));
        if (dropoutProbability is < 0 or > 1)
            throw new ArgumentException($"class dropout probability must lie in [0, 1], got {dropoutProbability}", nameof(dropoutProbability));
        NumClasses = numClasses;
        DropoutProbability = dropoutProbability;
        embedding_table = nn.Embedding(numClasses + (dropoutProbability > 0 ? 1 : 0), hiddenSize);
        RegisterComponents();
    }

    public long NumClasses { get; }

    public double DropoutProbability { get; }

    /// <summary>The label id meaning "no class" (the extra table row).</summary>
    public long NullClass => NumClasses;

    public Parameter Table => embedding_table.weight!;

    /// <summary>
    /// Embeds labels [B]. When <paramref name="train"/> and dropout is on, each label is replaced by the null class with
    /// probability dropout_prob (drawn on the generator's own device from <paramref name="generator"/> if given);
    /// <paramref name="forceDropIds"/> (1 = drop)
    /// forces the choice instead of drawing, in either mode.
    /// </summary>
    public Tensor forward(Tensor labels, bool train, Tensor? forceDropIds = null, Generator? generator = null)
    {
        using var scope = NewDisposeScope();
        var effective = labels;
        if ((train && DropoutProbability > 0) || forceDropIds is not null)
        {
            var drop = forceDropIds is null
                ? rand([labels.shape[0]], device: generator?.device ?? labels.device, generator: generator).to(labels.device) < DropoutProbability
                : forceDropIds.eq(1);
            effective = where(drop, full_like(labels, NullClass), labels);
        }
        var rows = embedding_table.weight!.shape[0];
        if (effective.lt(0).logical_or(effective.ge(rows)).any().item<bool>())
            throw new ArgumentOutOfRangeException(nameof(labels),
                $"label ids must lie in [0, {rows - 1}] (null class {NullClass}), got [{string.Join(", ", effective.cpu().data<long>().Take(16))}]");
        return embedding_table.forward(effective).MoveToOuterDisposeScope();
    }
}
