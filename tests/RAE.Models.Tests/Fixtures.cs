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

    /// <summary>
    /// The tolerance for the cases that run deep fp32 convolution stacks (LPIPS's VGG16, FID's Inception-v3): the
    /// fixtures' 1e-5 where oneDNN runs its AVX-512 kernels (the hosts these cases were verified on); its AVX2 kernels
    /// sum in another order, and on a Zen 3 host without AVX-512 the stacks drifted to 1.6e-5 (an LPIPS trace of squared
    /// differences), 7.3e-5 (Inception's 2048 pooled features) and 1.2e-4 (a corner of its last block's output), the same
    /// with MKL's fast path on or off. 3e-4 there.
    /// </summary>
    public static double ConvolutionStackTolerance =>
        System.Runtime.Intrinsics.X86.Avx512F.IsSupported ? Verification.ReferenceVerifier.DefaultTolerance : 3e-4;

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
