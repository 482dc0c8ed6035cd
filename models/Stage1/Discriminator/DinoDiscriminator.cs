using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// The reference <c>DinoDiscriminator</c>: a frozen DINO ViT (<see cref="DinoVisionBackbone"/>) whose five token feature
/// maps feed five <see cref="DiscriminatorHeads"/>; logits [B, 5·tokens]. As in the reference the backbone is held
/// outside the module tree: the state dict is <c>heads.*</c> only, and train/eval never reach the backbone.
/// The discriminator owns (and disposes) the backbone it is given.
/// </summary>
public sealed class DinoDiscriminator : nn.Module<Tensor, Tensor>, IDiscriminator
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> heads;
    private readonly DinoVisionBackbone _backbone;

    public DinoDiscriminator(DinoVisionBackbone backbone, DiscriminatorHeadOptions options, Generator? generator = null)
        : base(nameof(DinoDiscriminator))
    {
        _backbone = backbone;
        Options = options;
        heads = DiscriminatorHeads.Create(backbone.Recipe.EmbedDim, backbone.Recipe.HeadCount, options, generator);
        register_module(nameof(heads), heads);
    }

    public DiscriminatorHeadOptions Options { get; }

    public DinoVisionBackbone Backbone => _backbone;

    public nn.Module Module => this;

    /// <summary>Every spectral-norm conv by its state-dict prefix (e.g. <c>heads.0.1.fn.0</c>), in module order.</summary>
    public IReadOnlyList<(string Name, SpectralNormConv1d Conv)> SpectralConvs() =>
        named_modules().Where(m => m.module is SpectralNormConv1d)
            .Select(m => (m.name, (SpectralNormConv1d)m.module)).ToList();

    public IReadOnlyList<Parameter> TrainableParameters() => parameters().ToList();

    public void SetTraining(bool training) => train(training);

    /// <summary>Head h applied to feature map h ([B, C, tokens] → [B, 1, tokens]).</summary>
    public Tensor Head(int index, Tensor feature) => heads[index].forward(feature);

    public Tensor Classify(Tensor images)
    {
        using var scope = NewDisposeScope();
        var features = _backbone.Features(images);
        return DiscriminatorHeads.Logits(heads, features).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor images) => Classify(images);

    public (Tensor Fake, Tensor? Real) Forward(Tensor fake, Tensor? real = null)
    {
        var logitsFake = Classify(fake);
        return (logitsFake, real is null ? null : Classify(real));
    }

    /// <summary>Moves the heads and the (unregistered) backbone together.</summary>
    public DinoDiscriminator MoveTo(Device device)
    {
        this.to(device);
        _backbone.to(device);
        return this;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _backbone.Dispose();
        base.Dispose(disposing);
    }
}
