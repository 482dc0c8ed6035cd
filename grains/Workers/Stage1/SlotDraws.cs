using RAE.Grains.Workers.Stage2;
using RAE.Models.Stage1;
using RAE.Models.Stage1.Losses;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// The random draws of a Stage 1 step, made per global sample so that no value depends on the rank count: DiffAug's
/// per-sample rows of global slot k come from a generator seeded by (job seed, step, call, k), its batch-wide gates from one
/// seeded by (job seed, step, call); the train-mode latent noise of slot k from one seeded by (job seed, step, k).
/// "call" numbers DiffAug calls within the step's phase (<paramref name="phase"/>: 0 the generator, 1.. each discriminator update).
/// </summary>
internal sealed class SlotDraws(long seed, long step, int phase, int firstSlot, int count) : IUniformDraws
{
    private const ulong GateStream = 0x64696666676174UL, RowStream = 0x646966667277UL, NoiseStream = 0x6E6F697365UL;
    private int _calls;

    public Tensor Next(long[] shape, Device? device = null)
    {
        var call = (ulong)(phase * 1024 + _calls++);
        if (shape.Length >= 2 && shape[1] == count)
        {
            // Per-sample draws [rows, b, ...]: each sample's rows from its own slot's generator.
            using var scope = NewDisposeScope();
            var perSample = new long[] { shape[0] }.Concat(shape.Skip(2)).ToArray();
            var samples = new Tensor[count];
            for (var i = 0; i < count; i++)
            {
                using var generator = new Generator(SyntheticLatentStream.Mix(RowStream, (ulong)seed, (ulong)step, (call << 32) | (uint)(firstSlot + i)), CPU);
                samples[i] = rand(perSample, dtype: float32, generator: generator);
            }
            return stack(samples, 1).to(device ?? CPU).MoveToOuterDisposeScope();
        }
        using var gates = new Generator(SyntheticLatentStream.Mix(GateStream, (ulong)seed, (ulong)step, call), CPU);
        using var drawn = rand(shape, dtype: float32, generator: gates);
        return drawn.to(device ?? CPU);
    }

    /// <summary>The latent noise of slots [firstSlot, +count): σ uniforms [b,1,1] and normals of the token shape, per slot.</summary>
    public static LatentNoiseDraws LatentNoise(long seed, long step, int firstSlot) => (batch, tokenShape, dtype, device) =>
    {
        using var scope = NewDisposeScope();
        var uniforms = new Tensor[batch];
        var normals = new Tensor[batch];
        var perSample = tokenShape.Skip(1).ToArray();
        for (var i = 0; i < batch; i++)
        {
            using var generator = new Generator(SyntheticLatentStream.Mix(NoiseStream, (ulong)seed, (ulong)step, (ulong)(firstSlot + i)), CPU);
            uniforms[i] = rand([1, 1], dtype: float32, generator: generator);
            normals[i] = randn(perSample, dtype: float32, generator: generator);
        }
        return (stack(uniforms).to(dtype, device).MoveToOuterDisposeScope(), stack(normals).to(dtype, device).MoveToOuterDisposeScope());
    };
}
