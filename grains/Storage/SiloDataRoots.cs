using RAE.GrainInterfaces;

namespace RAE.Grains.Storage;

/// <summary>
/// The folders of the silo's file system a job may name (Rae:Silo:DataRoots). A path a job names is resolved to a full
/// path and must lie inside one of them before anything touches the file system, so the refusal reads the same whether
/// or not the file exists. A path inside a root that is a symbolic link must also lead into a root. Links in the folders
/// above the file are the business of whoever can write into a root (an operator, never a cluster client).
/// </summary>
public sealed class SiloDataRoots
{
    public const string SettingName = "Rae:Silo:DataRoots";

    public SiloDataRoots(IEnumerable<string> roots)
    {
        ArgumentNullException.ThrowIfNull(roots);
        Roots = roots.Select(Normalise).Distinct(StringComparer.Ordinal).ToList();
        if (Roots.Count == 0) throw new ArgumentException($"{SettingName} names no folder.", nameof(roots));
    }

    /// <summary>Full paths, each ending with the directory separator.</summary>
    public IReadOnlyList<string> Roots { get; }

    /// <summary>
    /// The full path of <paramref name="path"/> when it lies inside a data root; <see cref="RaeJobException"/> otherwise,
    /// naming <paramref name="setting"/> and the path as given, never whether it exists.
    /// </summary>
    public string Resolve(string path, string setting, string owner)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(setting);
        if (string.IsNullOrWhiteSpace(path) || path.Contains('\0', StringComparison.Ordinal)) throw Refused(path, setting, owner);
        string full;
        try
        {
            full = Path.GetFullPath(path);
        }
        catch (Exception error) when (error is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw Refused(path, setting, owner);
        }
        if (!IsInside(full)) throw Refused(path, setting, owner);
        if (LinkTarget(full) is { } target && !IsInside(target)) throw Refused(path, setting, owner);
        return full;
    }

    /// <summary>True when the (full) path is a root itself or lies below one.</summary>
    public bool IsInside(string fullPath) =>
        Roots.Any(root => fullPath.StartsWith(root, StringComparison.Ordinal) || fullPath + Path.DirectorySeparatorChar == root);

    private static string? LinkTarget(string fullPath)
    {
        try
        {
            FileSystemInfo entry = Directory.Exists(fullPath) ? new DirectoryInfo(fullPath) : new FileInfo(fullPath);
            return entry.LinkTarget is null ? null : entry.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? fullPath;
        }
        catch (IOException)
        {
            // An unresolvable link (a loop, too many levels) leads nowhere a job may read.
            return "";
        }
    }

    private static RaeJobException Refused(string? path, string setting, string owner) =>
        new($"{owner}: {setting} '{path}' is outside the silo's data roots ({SettingName}); the silo reads no file there.");

    private static string Normalise(string root)
    {
        if (string.IsNullOrWhiteSpace(root)) throw new ArgumentException($"{SettingName} has an empty entry.", nameof(root));
        var full = Path.GetFullPath(root);
        return full.EndsWith(Path.DirectorySeparatorChar) ? full : full + Path.DirectorySeparatorChar;
    }
}
