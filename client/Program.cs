using RAE.Client;
using RAE.Client.Commands;
using RAE.Models.Runtime;

try
{
    TorchRuntime.Initialise(new StandardErrorLogger(Console.Error));
}
catch (RuntimeSettingException error)
{
    Console.Error.WriteLine($"rae: bad environment: {error.Message}");
    return 2;
}

using var interrupt = new CancellationTokenSource();
Console.CancelKeyPress += (_, press) =>
{
    // The first Ctrl+C stops watching (jobs keep running in the cluster); a second one ends the process.
    if (interrupt.IsCancellationRequested) return;
    press.Cancel = true;
    interrupt.Cancel();
};
return await CommandLine.RunAsync(args, Console.Out, Console.Error, interrupt.Token);
