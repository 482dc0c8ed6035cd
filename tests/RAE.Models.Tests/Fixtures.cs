namespace RAE.Models.Tests;

/// <summary>Finds ../shared/fixtures beside the repository (or RAE_FIXTURES), walking up from the test binaries.</summary>
public static class Fixtures
{
    private static readonly Lazy<string> RootPath = new(FindRoot);

    public static string Root => RootPath.Value;

    public static string Case(string name) => Path.Combine(Root, name);

    private static string FindRoot()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable("RAE_FIXTURES");
        if (!string.IsNullOrEmpty(fromEnvironment))
            return Directory.Exists(fromEnvironment) ? fromEnvironment
                : throw new DirectoryNotFoundException($"RAE_FIXTURES points to a missing folder: {fromEnvironment}");
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "shared", "fixtures");
            if (Directory.Exists(candidate) && File.Exists(Path.Combine(candidate, "README.md"))) return candidate;
        }
        throw new DirectoryNotFoundException("the golden fixtures (../shared/fixtures beside the repository) were not found; set RAE_FIXTURES");
    }
}
