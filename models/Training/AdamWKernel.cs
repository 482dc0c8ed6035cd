using System.Numerics;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>
/// torch's AdamW update for one contiguous CPU fp32 parameter in a single pass over parameter, gradient and both moments,
/// vectorised and split across torch's intra-op thread count: it reads and writes each value once where the tensor-op
/// version streams the 784 MB of a DiT^DH-S parameter set nine times and allocates two temporaries of that size.
/// Public for workers that keep their own optimizer state (tiny-mlp's flat moments): any contiguous fp32 CPU views work.
/// </summary>
public static unsafe class AdamWKernel
{
    private const long ChunkElements = 1 << 16;

    // The tensor's data pointer (storage offset applied); TorchSharp exports it from its native library but does not wrap it.
    [DllImport("LibTorchSharp")]
    private static extern IntPtr THSTensor_data(IntPtr handle);

    public static bool CanFuse(Tensor parameter, Tensor gradient, Tensor expAvg, Tensor expAvgSq)
    {
        Tensor[] tensors = [parameter, gradient, expAvg, expAvgSq];
        var count = parameter.numel();
        return tensors.All(t => t.device_type == DeviceType.CPU && t.dtype == ScalarType.Float32 && t.is_contiguous() && t.numel() == count);
    }

    public static void Step(Tensor parameter, Tensor gradient, Tensor expAvg, Tensor expAvgSq, AdamWStepSettings settings, long step)
    {
        if (!CanFuse(parameter, gradient, expAvg, expAvgSq))
            throw new ArgumentException("the fused AdamW step needs contiguous CPU fp32 tensors of one size");
        var (stepSize, biasCorrection2Sqrt) = settings.Corrections(step);
        var update = new Update(
            (float*)THSTensor_data(parameter.Handle), (float*)THSTensor_data(gradient.Handle),
            (float*)THSTensor_data(expAvg.Handle), (float*)THSTensor_data(expAvgSq.Handle),
            settings.WeightDecay == 0 ? 1f : (float)(1 - settings.LearningRate * settings.WeightDecay),
            (float)settings.Beta1, (float)(1 - settings.Beta1), (float)settings.Beta2, (float)(1 - settings.Beta2),
            (float)biasCorrection2Sqrt, (float)settings.Eps, (float)-stepSize);
        var count = parameter.numel();
        var chunks = (count + ChunkElements - 1) / ChunkElements;
        if (chunks <= 1)
        {
            update.Apply(0, count);
            return;
        }
        var threads = Math.Max(1, get_num_threads());
        Parallel.For(0L, chunks, new ParallelOptions { MaxDegreeOfParallelism = threads },
            chunk => update.Apply(chunk * ChunkElements, Math.Min(count, (chunk + 1) * ChunkElements)));
    }

    private readonly struct Update(
        float* parameter, float* gradient, float* expAvg, float* expAvgSq,
        float decay, float beta1, float oneMinusBeta1, float beta2, float oneMinusBeta2, float biasCorrection2Sqrt, float eps, float negativeStepSize)
    {
        public void Apply(long start, long end)
        {
            var i = start;
            var width = Vector<float>.Count;
            if (Vector.IsHardwareAccelerated)
            {
                var decayV = new Vector<float>(decay);
                var beta1V = new Vector<float>(beta1);
                var oneMinusBeta1V = new Vector<float>(oneMinusBeta1);
                var beta2V = new Vector<float>(beta2);
                var oneMinusBeta2V = new Vector<float>(oneMinusBeta2);
                var correctionV = new Vector<float>(biasCorrection2Sqrt);
                var epsV = new Vector<float>(eps);
                var stepV = new Vector<float>(negativeStepSize);
                for (; i + width <= end; i += width)
                {
                    var g = Vector.Load(gradient + i);
                    var m = Vector.Load(expAvg + i) * beta1V + g * oneMinusBeta1V;
                    var v = Vector.Load(expAvgSq + i) * beta2V + g * g * oneMinusBeta2V;
                    var denominator = Vector.SquareRoot(v) / correctionV + epsV;
                    var p = Vector.Load(parameter + i) * decayV + stepV * (m / denominator);
                    m.Store(expAvg + i);
                    v.Store(expAvgSq + i);
                    p.Store(parameter + i);
                }
            }
            for (; i < end; i++)
            {
                var g = gradient[i];
                var m = expAvg[i] * beta1 + g * oneMinusBeta1;
                var v = expAvgSq[i] * beta2 + g * g * oneMinusBeta2;
                expAvg[i] = m;
                expAvgSq[i] = v;
                parameter[i] = parameter[i] * decay + negativeStepSize * (m / (MathF.Sqrt(v) / biasCorrection2Sqrt + eps));
            }
        }
    }
}
