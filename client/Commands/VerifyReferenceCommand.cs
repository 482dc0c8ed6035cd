using System.CommandLine;
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
    private readonly Argument<string> _directory = new("DIR") { Description = "A case folder: case.json, weights.safetensors, io.safetensors" };
    private readonly Option<double> _tolerance = new("--tolerance") { Description = "Largest relative error that passes", DefaultValueFactory = _ => ReferenceVerifier.DefaultTolerance };
    private readonly Option<bool> _json = CliOptions.Json();

    public VerifyReferenceCommand() =>
        Command = new Command("verify-reference", "Compare our outputs with tensors exported from the reference") { _directory, _tolerance, _json };

    public string Name => "verify-reference";

    public Command Command { get; }

    public Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var tolerance = parsed.GetValue(_tolerance);
        var json = parsed.GetValue(_json);
        if (!(tolerance > 0)) throw new UsageException($"--tolerance must be positive, got {tolerance}");
        var directory = parsed.GetRequiredValue(_directory);

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
