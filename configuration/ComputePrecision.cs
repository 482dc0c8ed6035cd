namespace RAE.Configuration;

/// <summary>The arithmetic of matmuls and attention (the reference's <c>--precision</c>); parameters stay fp32.</summary>
public enum ComputePrecision
{
    Float32,
    BFloat16,
}

public static class ComputePrecisions
{
    /// <summary>"fp32" or "bf16" (the reference's names); anything else throws, naming the value.</summary>
    public static ComputePrecision Parse(string text) => text switch
    {
        "fp32" => ComputePrecision.Float32,
        "bf16" => ComputePrecision.BFloat16,
        _ => throw new ArgumentException($"precision must be fp32 or bf16, got '{text}'"),
    };

    public static string Name(this ComputePrecision precision) => precision == ComputePrecision.BFloat16 ? "bf16" : "fp32";
}
