using RAE.GrainInterfaces;
using RAE.Models.IO;
using RAE.Silo.Web;
using SkiaSharp;

namespace RAE.Client.Demo;

/// <summary>The demo's pictures: the sample grid (one row per class, its name at the left) and the loss curves.</summary>
public static class DemoFigures
{
    private const int Padding = 2;
    private const int LabelWidth = 110;

    /// <summary>
    /// Writes the images of the sampling job's <c>.npz</c> (arr_0, uint8 [N, H, W, 3]) as a grid PNG: row c holds the samples
    /// whose label is c (<paramref name="labels"/>, in sample order), each scaled up by <paramref name="scale"/>.
    /// Returns the PNG's (width, height).
    /// </summary>
    public static (int Width, int Height) WriteSampleGrid(string npzPath, IReadOnlyList<int> labels, IReadOnlyList<string> classNames, string pngPath, int scale = 2)
    {
        using var reader = NpzReader.Open(npzPath);
        using var images = reader.ReadArray(Npz.ImagesKey);
        if (images.dim() != 4 || images.shape[3] != 3 || images.shape[0] != labels.Count)
            throw new InvalidDataException($"{npzPath}: arr_0 has shape [{string.Join(", ", images.shape)}]; expected [{labels.Count}, H, W, 3]");
        var (count, height, width) = ((int)images.shape[0], (int)images.shape[1], (int)images.shape[2]);
        var pixels = images.contiguous().data<byte>().ToArray();
        var columns = Enumerable.Range(0, classNames.Count).Select(c => labels.Count(label => label == c)).DefaultIfEmpty(0).Max();
        var cell = width * scale + Padding;
        var gridWidth = LabelWidth + Math.Max(1, columns) * cell + Padding;
        var gridHeight = classNames.Count * (height * scale + Padding) + Padding;

        using var bitmap = new SKBitmap(gridWidth, gridHeight, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using (var canvas = new SKCanvas(bitmap))
        {
            canvas.Clear(SKColors.White);
            using var font = new SKFont(SKTypeface.Default, 13);
            using var ink = new SKPaint { Color = SKColors.Black, IsAntialias = true };
            for (var c = 0; c < classNames.Count; c++)
                canvas.DrawText(classNames[c], 4, Padding + c * (height * scale + Padding) + height * scale / 2f + 5, SKTextAlign.Left, font, ink);
        }
        var column = new int[classNames.Count];
        for (var index = 0; index < count; index++)
        {
            var label = labels[index];
            if (label < 0 || label >= classNames.Count) continue;
            var left = LabelWidth + column[label]++ * cell + Padding;
            var top = Padding + label * (height * scale + Padding);
            for (var y = 0; y < height * scale; y++)
                for (var x = 0; x < width * scale; x++)
                {
                    var at = ((index * height + y / scale) * width + x / scale) * 3;
                    bitmap.SetPixel(left + x, top + y, new SKColor(pixels[at], pixels[at + 1], pixels[at + 2]));
                }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(pngPath))!);
        using (var image = SKImage.FromBitmap(bitmap))
        using (var data = image.Encode(SKEncodedImageFormat.Png, 100))
        using (var file = File.Create(pngPath))
            data.SaveTo(file);
        return (gridWidth, gridHeight);
    }

    /// <summary>The training job's loss curve, drawn as the job pages draw it (<see cref="MetricCurves"/>).</summary>
    public static void WriteLossCurve(IReadOnlyList<StepMetrics> metrics, string jobId, string pngPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(pngPath))!);
        File.WriteAllBytes(pngPath, MetricCurves.RenderPng(metrics, MetricCurves.Find("loss")!, jobId));
    }

    /// <summary>The training job's online evaluation curve, drawn as the job pages draw it.</summary>
    public static void WriteEvaluationCurve(IReadOnlyList<OnlineEvaluationRecord> evaluations, string metric, string jobId, string pngPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(pngPath))!);
        File.WriteAllBytes(pngPath, MetricCurves.RenderEvaluationPng(evaluations, metric, jobId));
    }
}
