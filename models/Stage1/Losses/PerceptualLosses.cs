using RAE.Configuration;
using TorchSharp;
using static TorchSharp.torch;

namespace RAE.Models.Stage1.Losses;

/// <summary>Builds the perceptual loss that <c>gan.loss.perceptual</c> names, with its weights.</summary>
public static class PerceptualLosses
{
    /// <summary>
    /// <c>lpips</c>: LPIPS-VGG16 from <c>lpips_vgg16_path</c> and <c>lpips_lin_path</c> (both required: nothing is
    /// downloaded); <c>resnet18</c>: the offline loss on the featurizer ONNX beside the application (or at
    /// <paramref name="resNet18ModelPath"/> / <paramref name="resNet18PreprocessModelPath"/>).
    /// </summary>
    public static IPerceptualLoss Create(GanLossConfig loss, Device? device = null,
        string? resNet18ModelPath = null, string? resNet18PreprocessModelPath = null)
    {
        ArgumentNullException.ThrowIfNull(loss);
        switch (loss.Perceptual)
        {
            case GanLossConfig.Lpips:
                if (loss.LpipsVgg16Path is null || loss.LpipsLinPath is null)
                {
                    var missing = string.Join(" and ", new[] { ("gan.loss.lpips_vgg16_path", loss.LpipsVgg16Path), ("gan.loss.lpips_lin_path", loss.LpipsLinPath) }
                        .Where(entry => entry.Item2 is null).Select(entry => entry.Item1));
                    throw new ArgumentException(
                        $"gan.loss.perceptual is lpips but {missing} is not set (nothing is downloaded); set it, or use perceptual: resnet18 to train offline",
                        nameof(loss));
                }
                RequireFile(loss.LpipsVgg16Path, "gan.loss.lpips_vgg16_path", "the torchvision vgg16 state dict");
                RequireFile(loss.LpipsLinPath, "gan.loss.lpips_lin_path", "the LPIPS linear-layer weights");
                var lpips = new Lpips();
                try
                {
                    lpips.LoadPretrained(loss.LpipsVgg16Path, loss.LpipsLinPath);
                    if (device is not null) lpips.to(device);
                    return lpips;
                }
                catch
                {
                    lpips.Dispose();
                    throw;
                }
            case GanLossConfig.ResNet18:
                return ResNet18PerceptualLoss.Load(resNet18ModelPath, resNet18PreprocessModelPath, device);
            default:
                throw new ArgumentException(
                    $"gan.loss.perceptual '{loss.Perceptual}' is unknown; expected one of: {string.Join(", ", GanLossConfig.PerceptualLosses)}", nameof(loss));
        }
    }

    private static void RequireFile(string path, string key, string what)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{key}: {what} {path} does not exist", path);
    }
}
