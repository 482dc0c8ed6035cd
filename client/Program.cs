using RAE.Client.Commands;

return await CommandLine.RunAsync(args, Console.Out, Console.Error);
