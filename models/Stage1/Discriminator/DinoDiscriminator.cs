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
public sealed class DinoDiscriminator : HeadsDiscriminator
{
    private readonly DinoVisionBackbone _backbone;

    public DinoDiscriminator(DinoVisionBackbone backbone, DiscriminatorHeadOptions options, Generator? generator = null)
        : base(nameof(DinoDiscriminator), backbone, DiscriminatorHeads.Create(backbone.Recipe.EmbedDim, backbone.Recipe.HeadCount, options, generator))
    {
        _backbone = backbone;
        Options = options;
    }

    public DiscriminatorHeadOptions Options { get; }

    public DinoVisionBackbone Backbone => _backbone;

    /// <summary>Every spectral-norm conv by its state-dict prefix (e.g. <c>heads.0.1.fn.0</c>), in module order.</summary>
    public IReadOnlyList<(string Name, SpectralNormConv1d Conv)> SpectralConvs() =>
        named_modules().Where(m => m.module is SpectralNormConv1d)
            .Select(m => (m.name, (SpectralNormConv1d)m.module)).ToList();

    public override IReadOnlyList<Tensor> Features(Tensor images) => _backbone.Features(images);
}
