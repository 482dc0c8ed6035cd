namespace RAE.Models.Tests;

/// <summary>
/// Finds the golden fixtures: <c>RAE_FIXTURES</c> when set, else the repository's own <c>tests/fixtures</c> (walking up
/// from the test binaries), so a clone placed anywhere runs its tests with nothing beside it.
/// </summary>
public static class Fixtures
{
    public const string EnvironmentVariable = "RAE_FIXTURES";

    private static readonly Lazy<string> RootPath = new(FindRoot);

    public static string Root => RootPath.Value;

    public static string Case(string name) => Path.Combine(Root, name);

    private static string FindRoot()
    {
        var fromEnvironment = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrEmpty(fromEnvironment))
            return Directory.Exists(fromEnvironment) ? fromEnvironment
                : throw new DirectoryNotFoundException($"{EnvironmentVariable} points to a missing folder: {fromEnvironment}");
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            var candidate = Path.Combine(directory.FullName, "tests", "fixtures");
            if (File.Exists(Path.Combine(candidate, "README.md"))) return candidate;
        }
        throw new DirectoryNotFoundException(
            $"the golden fixtures (tests/fixtures in the repository) were not found above {AppContext.BaseDirectory}; set {EnvironmentVariable}");
    }
}
