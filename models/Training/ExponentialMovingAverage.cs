using static TorchSharp.torch;

namespace RAE.Models.Training;

/// <summary>EMA of a model's parameters: p_ema ← d·p_ema + (1 − d)·p over all named parameters, under no_grad.</summary>
public static class ExponentialMovingAverage
{
    /// <summary>Makes <paramref name="ema"/> an exact copy of <paramref name="model"/> (parameters and buffers).</summary>
    public static void CopyFrom(nn.Module ema, nn.Module model)
    {
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var source = model.state_dict();
        var target = ema.state_dict();
        CheckSameKeys(target.Keys, source.Keys);
        foreach (var (key, tensor) in target)
        {
            if (!tensor.shape.SequenceEqual(source[key].shape))
                throw new ArgumentException($"EMA copy: '{key}' has shape [{string.Join(",", tensor.shape)}] in the EMA model, [{string.Join(",", source[key].shape)}] in the model");
            tensor.copy_(source[key]);
        }
    }

    public static void Update(nn.Module ema, nn.Module model, double decay)
    {
        if (!(decay >= 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must lie in [0, 1]");
        using var scope = NewDisposeScope();
        using var guard = no_grad();
        var emaParameters = ema.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var modelParameters = model.named_parameters().ToList();
        CheckSameKeys(emaParameters.Keys, modelParameters.Select(p => p.name));
        foreach (var (name, parameter) in modelParameters)
        {
            var target = emaParameters[name];
            target.mul_(decay).add_(parameter.detach(), alpha: 1 - decay);
        }
    }

    private static void CheckSameKeys(IEnumerable<string> emaKeys, IEnumerable<string> modelKeys)
    {
        var a = emaKeys.ToHashSet();
        var b = modelKeys.ToHashSet();
        if (a.SetEquals(b)) return;
        throw new ArgumentException(
            $"EMA and model differ: only in EMA [{string.Join(", ", a.Except(b))}], only in model [{string.Join(", ", b.Except(a))}]");
    }
}
