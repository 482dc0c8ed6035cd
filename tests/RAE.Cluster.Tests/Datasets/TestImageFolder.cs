using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace RAE.Cluster.Tests.Datasets;

/// <summary>A small ImageFolder tree of tiny PNGs (class = sub-folder) plus whatever bad files a test adds; deleted on dispose.</summary>
internal sealed class TestImageFolder : IDisposable
{
    public string Root { get; } = Path.Combine(Path.GetTempPath(), "rae-imagefolder-" + Guid.NewGuid().ToString("N")[..8]);

    /// <summary>Writes <paramref name="count"/> distinct 5x4 PNGs into <c>Root/className/</c>; returns their relative names.</summary>
    public IReadOnlyList<string> AddImages(string className, int count)
    {
        var folder = Directory.CreateDirectory(Path.Combine(Root, className)).FullName;
        var names = new List<string>();
        for (var index = 0; index < count; index++)
        {
            using var image = new Image<Rgb24>(5, 4);
            var shade = (byte)(className.Length * 31 + index * 17);
            image.ProcessPixelRows(rows =>
            {
                for (var y = 0; y < rows.Height; y++)
                {
                    var row = rows.GetRowSpan(y);
                    for (var x = 0; x < row.Length; x++) row[x] = new Rgb24(shade, (byte)(x * 40), (byte)(y * 60));
                }
            });
            var name = $"img-{index:D2}.png";
            image.SaveAsPng(Path.Combine(folder, name));
            names.Add($"{className}/{name}");
        }
        return names;
    }

    public string AddFile(string relativePath, byte[] bytes)
    {
        var path = Path.Combine(Root, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllBytes(path, bytes);
        return relativePath;
    }

    public byte[] Read(string relativePath) => File.ReadAllBytes(Path.Combine(Root, relativePath));

    public void Dispose()
    {
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }
}
