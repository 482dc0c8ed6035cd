using RAE.Client;
using RAE.Client.Commands;
using RAE.Models.Runtime;

TorchRuntime.Initialise(new StandardErrorLogger(Console.Error));

using var interrupt = new CancellationTokenSource();
Console.CancelKeyPress += (_, press) =>
{
    // The first Ctrl+C stops watching (jobs keep running in the cluster); a second one ends the process.
    if (interrupt.IsCancellationRequested) return;
    press.Cancel = true;
    interrupt.Cancel();
};
return await CommandLine.RunAsync(args, Console.Out, Console.Error, interrupt.Token);
