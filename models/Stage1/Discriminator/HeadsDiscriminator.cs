using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Discriminator;

/// <summary>
/// What the DINO and <c>resnet18-heads</c> discriminators share: a frozen backbone held outside the module tree (so the
/// state dict is <c>heads.*</c> only and train/eval never reach it) whose feature maps feed one
/// <see cref="DiscriminatorHeads"/> head each. The discriminator owns (and disposes) its backbone.
/// </summary>
public abstract class HeadsDiscriminator : nn.Module<Tensor, Tensor>, IDiscriminator
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> heads;
    private readonly nn.Module _frozenBackbone;

    protected HeadsDiscriminator(string name, nn.Module frozenBackbone, ModuleList<nn.Module<Tensor, Tensor>> heads) : base(name)
    {
        _frozenBackbone = frozenBackbone;
        this.heads = heads;
        register_module(nameof(heads), heads);
    }

    public nn.Module Module => this;

    /// <summary>The backbone's feature maps as token sequences [B, C_h, tokens], one per head, gradients flowing to the images.</summary>
    public abstract IReadOnlyList<Tensor> Features(Tensor images);

    /// <summary>Head h applied to feature map h ([B, C, tokens] → [B, 1, tokens]).</summary>
    public Tensor Head(int index, Tensor feature) => heads[index].forward(feature);

    public IReadOnlyList<Parameter> TrainableParameters() => parameters().ToList();

    public void SetTraining(bool training) => train(training);

    public Tensor Classify(Tensor images)
    {
        using var scope = NewDisposeScope();
        return DiscriminatorHeads.Logits(heads, Features(images)).MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor images) => Classify(images);

    public (Tensor Fake, Tensor? Real) Forward(Tensor fake, Tensor? real = null)
    {
        var logitsFake = Classify(fake);
        return (logitsFake, real is null ? null : Classify(real));
    }

    /// <summary>Moves the heads and the (unregistered) backbone together.</summary>
    public HeadsDiscriminator MoveTo(Device device)
    {
        this.to(device);
        _frozenBackbone.to(device);
        return this;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _frozenBackbone.Dispose();
        base.Dispose(disposing);
    }
}
