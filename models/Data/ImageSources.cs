namespace RAE.Models.Data;

/// <summary>One image offered by a source: its name in reports, its class index, its size and a way to read its bytes.</summary>
public sealed record SourceImage(string Name, int Label, long Length, Func<byte[]> ReadBytes);

/// <summary>A set of labelled images to turn into a dataset (an ImageFolder tree or MNIST-style IDX files).</summary>
public interface IImageSource
{
    /// <summary>Where the images come from, for the manifest.</summary>
    string Description { get; }

    IReadOnlyList<string> Classes { get; }

    /// <summary>The images in the reference's order (ImageFolder order, or the IDX record order).</summary>
    IEnumerable<SourceImage> Images();
}

public static class ImageSources
{
    /// <summary>
    /// Opens SOURCE as given to <c>rae datasets add</c>: a folder holding MNIST-style IDX files (the split picks
    /// <c>train</c> or <c>t10k</c>/<c>test</c>), an IDX images file itself, or else an ImageFolder tree.
    /// </summary>
    public static IImageSource Open(string path, string? split = null)
    {
        if (File.Exists(path)) return IdxImageSource.Open(path, split);
        if (!Directory.Exists(path)) throw new DirectoryNotFoundException($"dataset source not found: {path}");
        return IdxImageSource.FindImagesFile(path, split) is not null ? IdxImageSource.Open(path, split) : ImageFolderSource.Open(path, split);
    }
}

/// <summary>
/// torchvision's <c>ImageFolder</c>: classes are the immediate sub-folders sorted by name (ordinal, as Python sorts
/// strings), class index = position in that order; the images of a class are every file below its folder, walking
/// folders in sorted path order and files sorted within each folder. Hidden files and folders (leading '.') are left
/// out. Every other file is offered, so a non-image is reported by name instead of silently vanishing.
/// </summary>
public sealed class ImageFolderSource : IImageSource
{
    private readonly string _root;

    private ImageFolderSource(string root, IReadOnlyList<string> classes)
    {
        _root = root;
        Classes = classes;
    }

    public string Description => $"imagefolder:{_root}";

    public IReadOnlyList<string> Classes { get; }

    public static ImageFolderSource Open(string root, string? split = null)
    {
        var folder = split is null ? root : Path.Combine(root, split);
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException(split is null ? $"ImageFolder root not found: {folder}" : $"split '{split}' not found: no folder {folder}");
        var classes = Directory.GetDirectories(folder).Select(Path.GetFileName).OfType<string>()
            .Where(name => !name.StartsWith('.')).Order(StringComparer.Ordinal).ToArray();
        if (classes.Length == 0)
            throw new ArgumentException($"{folder} has no class sub-folders; an ImageFolder dataset is <root>/<class>/<image> (or give MNIST-style IDX files)");
        return new ImageFolderSource(Path.GetFullPath(folder), classes);
    }

    public IEnumerable<SourceImage> Images()
    {
        for (var label = 0; label < Classes.Count; label++)
        {
            var classFolder = Path.Combine(_root, Classes[label]);
            foreach (var folder in FoldersInWalkOrder(classFolder))
            foreach (var file in Directory.GetFiles(folder).Where(file => !Path.GetFileName(file).StartsWith('.')).Order(StringComparer.Ordinal))
            {
                var path = file;
                yield return new SourceImage(Path.GetRelativePath(_root, path).Replace('\\', '/'), label, new FileInfo(path).Length, () => File.ReadAllBytes(path));
            }
        }
    }

    private static IEnumerable<string> FoldersInWalkOrder(string classFolder)
    {
        var folders = new List<string> { classFolder };
        folders.AddRange(Directory.GetDirectories(classFolder, "*", SearchOption.AllDirectories)
            .Where(folder => !Path.GetRelativePath(classFolder, folder).Split(Path.DirectorySeparatorChar).Any(part => part.StartsWith('.'))));
        return folders.Order(StringComparer.Ordinal);
    }
}
