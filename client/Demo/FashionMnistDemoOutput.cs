using System.Globalization;
using RAE.Client.Cluster;
using RAE.GrainInterfaces;

namespace RAE.Client.Demo;

/// <summary>Runs the Fashion-MNIST demo and reports it: stage times, both FDs and every file, as text or as one JSON object.</summary>
public static class FashionMnistDemoOutput
{
    public static async Task<int> RunAsync(FashionMnistDemo demo, CommandContext context, TextWriter log)
    {
        FashionMnistDemoResult result;
        try
        {
            result = await demo.RunAsync();
        }
        catch (Exception problem) when (problem is DemoStageException or RaeJobException or IOException or InvalidDataException)
        {
            context.Error.WriteLine($"rae demo: {problem.Message}");
            return ClusterCommand.Failed;
        }
        if (context.Json)
        {
            context.WriteJson(new
            {
                dataset = "fashion-mnist", result.Stages, totalSeconds = Math.Round(result.TotalSeconds, 1), totalCpuSeconds = Math.Round(result.TotalCpuSeconds, 1),
                fdResnet18 = new { trained = result.FdTrained, untrained = result.FdUntrained },
                stage2Evaluations = result.Stage2Evaluations.Select(e => new { e.Step, e.Metric, e.Value, e.Images, e.Seconds, e.Error }),
                result.Classes, result.Jobs, result.Files, npzArray = result.NpzShape, grid = new { width = result.GridWidth, height = result.GridHeight },
            });
            return ClusterCommand.Ok;
        }
        var invariant = CultureInfo.InvariantCulture;
        log.WriteLine();
        log.WriteLine("stage              seconds  CPU seconds");
        foreach (var stage in result.Stages) log.WriteLine(string.Create(invariant, $"{stage.Name,-18} {stage.Seconds,7:F1}  {stage.CpuSeconds,11:F1}"));
        log.WriteLine(string.Create(invariant, $"{"total",-18} {result.TotalSeconds,7:F1}  {result.TotalCpuSeconds,11:F1}"));
        log.WriteLine();
        log.WriteLine(string.Create(invariant, $"fd_resnet18 (ResNet18 pooled features, not FID) against the test images: trained DiT^DH {result.FdTrained:F2}, untrained DiT^DH {result.FdUntrained:F2} (ratio {result.FdTrained / result.FdUntrained:F2})"));
        foreach (var evaluation in result.Stage2Evaluations) log.WriteLine("online: " + JobWatcher.EvaluationLine("stage2", evaluation));
        log.WriteLine();
        foreach (var (name, path) in result.Files.OrderBy(file => file.Key, StringComparer.Ordinal)) log.WriteLine($"{name + ":",-28} {path}");
        log.WriteLine($"grid rows (top to bottom): {string.Join(", ", result.Classes)}");
        return ClusterCommand.Ok;
    }
}
