using System.Globalization;
using System.Text.Json;
using RAE.Models.Verification;

namespace RAE.Client.Commands;

/// <summary>
/// `rae verify-reference DIR`: checks a model port or converted weights against tensors exported from PyTorch
/// (case.json, weights.safetensors, io.safetensors). Exit 0 when every output is within tolerance, 1 otherwise.
/// </summary>
public sealed class VerifyReferenceCommand : ICliCommand
{
    public string Name => "verify-reference";

    public string Summary => "DIR [--tolerance 1e-5] [--json]: compare our outputs with tensors exported from the reference";

    public Task<int> RunAsync(CommandArguments arguments, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var tolerance = arguments.Double("tolerance", ReferenceVerifier.DefaultTolerance);
        var json = arguments.Flag("json");
        arguments.RejectUnknownOptions();
        if (arguments.Positional.Count != 1) throw new UsageException("expects exactly one case folder");
        if (!(tolerance > 0)) throw new UsageException($"--tolerance must be positive, got {tolerance}");
        var directory = arguments.Positional[0];

        IReadOnlyList<OutputComparison> comparisons;
        try
        {
            comparisons = ReferenceVerifier.CreateDefault().Verify(directory, tolerance);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or NotSupportedException or JsonException or KeyNotFoundException)
        {
            error.WriteLine($"rae verify-reference: {ex.Message}");
            return Task.FromResult(1);
        }

        if (comparisons.Count == 0)
        {
            error.WriteLine($"rae verify-reference: {directory} holds no expected output that could be checked");
            return Task.FromResult(1);
        }
        var passed = comparisons.All(c => c.Passed);
        if (json)
        {
            output.WriteLine(JsonSerializer.Serialize(new
            {
                directory,
                tolerance,
                passed,
                outputs = comparisons.Select(c => new
                {
                    name = c.Name,
                    shape = c.Shape,
                    max_abs_error = c.MaxAbsoluteError,
                    max_rel_error = c.MaxRelativeError,
                    passed = c.Passed,
                }),
            }));
        }
        else
        {
            output.WriteLine($"{"output",-44} {"shape",-18} {"max abs err",12} {"max rel err",12}  result");
            foreach (var c in comparisons)
            {
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{c.Name,-44} {"[" + string.Join(",", c.Shape) + "]",-18} {c.MaxAbsoluteError,12:E3} {c.MaxRelativeError,12:E3}  {(c.Passed ? "ok" : "FAIL")}"));
            }
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{comparisons.Count(c => c.Passed)} of {comparisons.Count} outputs within {tolerance:G3} relative: {(passed ? "PASS" : "FAIL")}"));
        }
        return Task.FromResult(passed ? 0 : 1);
    }
}
