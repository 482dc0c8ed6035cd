using System.Diagnostics;

namespace RAE.Models.Tests;

/// <summary>A fact that runs only where a Python with numpy exists; otherwise it is reported as skipped, with the reason.</summary>
public sealed class NumpyFactAttribute : FactAttribute
{
    public NumpyFactAttribute()
    {
        if (PythonWithNumpy.Executable is null) Skip = PythonWithNumpy.Unavailable;
    }
}

/// <summary>Finds a Python interpreter that can import numpy (python3 on PATH, then /usr/bin/python3).</summary>
public static class PythonWithNumpy
{
    private static readonly Lazy<string?> Found = new(Find);

    public static string? Executable => Found.Value;

    public static string Unavailable => "numpy is not installed for python3 or /usr/bin/python3 (`python3 -c \"import numpy\"` fails); numpy cross-checks skipped, byte-level checks still run";

    /// <summary>Runs a script and returns its standard output; fails the test with stderr if it exits non-zero.</summary>
    public static string Run(string script, params string[] arguments)
    {
        var executable = Executable ?? throw new InvalidOperationException(Unavailable);
        var start = new ProcessStartInfo(executable) { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(script);
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"python failed ({process.ExitCode}): {error}");
        return output.Result;
    }

    private static string? Find()
    {
        foreach (var candidate in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                var start = new ProcessStartInfo(candidate, ["-c", "import numpy"]) { RedirectStandardError = true, RedirectStandardOutput = true };
                using var process = Process.Start(start);
                if (process is null) continue;
                process.WaitForExit(30_000);
                if (process.HasExited && process.ExitCode == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed under this name
            }
        }
        return null;
    }
}
