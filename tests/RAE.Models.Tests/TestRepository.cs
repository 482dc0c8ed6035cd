namespace RAE.Models.Tests;

/// <summary>The checkout this test assembly was built from.</summary>
internal static class TestRepository
{
    private static readonly Lazy<string> LazyRoot = new(() =>
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
            if (File.Exists(Path.Combine(directory.FullName, "RAE.sln"))) return directory.FullName;
        throw new DirectoryNotFoundException($"no folder holding RAE.sln above {AppContext.BaseDirectory}");
    });

    /// <summary>The folder holding RAE.sln.</summary>
    public static string Root => LazyRoot.Value;
}
