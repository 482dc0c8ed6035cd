using static TorchSharp.torch;

namespace RAE.Models.Stage1.Encoders;

/// <summary>Creates an encoder from the reference's <c>encoder_cls</c> name and a Hugging Face model folder.</summary>
public static class Stage1Encoders
{
    /// <summary>The reference class names this build can create.</summary>
    public static IReadOnlyList<string> Names { get; } = ["Dinov2withNorm", "SigLIP2wNorm", "MAEwNorm"];

    public static IRepresentationEncoder FromPretrained(string encoderCls, string folder, Device? device = null) => encoderCls switch
    {
        "Dinov2withNorm" => Dinov2WithRegistersEncoder.FromPretrained(folder, device),
        "SigLIP2wNorm" => Siglip2VisionEncoder.FromPretrained(folder, device),
        "MAEwNorm" => MaeEncoder.FromPretrained(folder, device),
        _ => throw new NotSupportedException($"encoder_cls '{encoderCls}' is not supported here ({string.Join(", ", Names)})"),
    };
}
