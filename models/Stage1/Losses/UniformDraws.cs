using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>
/// The source of the U(0,1) draws a random augmentation makes (the reference's <c>torch.rand</c> calls), injectable so that
/// recorded draws reproduce a reference output exactly.
/// </summary>
public interface IUniformDraws
{
    /// <summary>A float32 tensor of the given shape with values in [0, 1), on <paramref name="device"/>.</summary>
    Tensor Next(long[] shape, Device? device = null);
}

/// <summary>Fresh draws from a TorchSharp generator (or the global one when none is given).</summary>
public sealed class GeneratorUniformDraws(Generator? generator = null) : IUniformDraws
{
    public Tensor Next(long[] shape, Device? device = null) => rand(shape, dtype: float32, device: device, generator: generator);
}

/// <summary>
/// Draws given in advance, handed out in call order. A call whose shape differs from the next recorded draw, or a call after
/// the last one, is an <see cref="InvalidDataException"/> naming the call, so a port that draws differently from the reference fails loudly.
/// </summary>
public sealed class RecordedUniformDraws : IUniformDraws
{
    private readonly IReadOnlyList<Tensor> _draws;

    public RecordedUniformDraws(IReadOnlyList<Tensor> draws) => _draws = draws;

    /// <summary>How many recorded draws have been handed out.</summary>
    public int Used { get; private set; }

    public int Count => _draws.Count;

    public Tensor Next(long[] shape, Device? device = null)
    {
        if (Used >= _draws.Count)
            throw new InvalidDataException($"draw {Used} of shape [{string.Join(",", shape)}] was requested, but only {_draws.Count} draws were recorded");
        var draw = _draws[Used];
        if (!draw.shape.SequenceEqual(shape))
            throw new InvalidDataException(
                $"draw {Used} was requested with shape [{string.Join(",", shape)}], but the recorded draw has shape [{string.Join(",", draw.shape)}]");
        Used++;
        return draw.to(float32, device ?? draw.device, copy: true);
    }
}
