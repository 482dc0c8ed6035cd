using System.Globalization;
using RAE.Client.Bench;
using RAE.Silo;

namespace RAE.Client.Commands;

/// <summary>
/// `rae bench silo`: internal to `rae bench cluster`, which starts each silo of its cluster as a separate process with
/// this command. An embedded-mode silo (localhost clustering through the primary silo's port) that prints
/// <see cref="SiloProcess.ReadyLine"/> once it has joined, and stops when its standard input closes (the parent closes
/// it to stop the silo, and the pipe closes by itself when the parent dies). Repeatable `--set KEY=VALUE` overrides any
/// silo setting (for example Rae:Silo:ClusterMode=Azure for the process failover tests).
/// </summary>
public sealed class BenchSiloCommand : ICliCommand
{
    public string Name => "bench silo";

    public string Summary => "(internal) one silo process of `bench cluster`";

    public async Task<int> RunAsync(CommandArguments arguments, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Rae:Silo:ClusterMode"] = "Embedded",
            ["Rae:Silo:ClusterId"] = Required(arguments, "cluster-id"),
            ["Rae:Silo:ServiceId"] = Required(arguments, "cluster-id"),
            ["Rae:Silo:DataFolder"] = Required(arguments, "data"),
            ["Rae:Silo:SiloPort"] = Required(arguments, "silo-port"),
            ["Rae:Silo:GatewayPort"] = Required(arguments, "gateway-port"),
            ["Rae:Silo:WebPort"] = Required(arguments, "web-port"),
            ["Rae:Silo:PrimarySiloPort"] = Required(arguments, "primary-port"),
            ["Rae:Silo:ThreadsPerRank"] = arguments.Int("threads", 1).ToString(CultureInfo.InvariantCulture),
            ["Rae:Silo:Devices:0"] = "cpu",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var setting in arguments.Options("set"))
        {
            var equals = setting.IndexOf('=');
            if (equals <= 0) throw new UsageException($"--set expects KEY=VALUE (for example Rae:Silo:ClusterMode=Azure), got '{setting}'");
            settings[setting[..equals]] = setting[(equals + 1)..];
        }
        arguments.RejectUnknownOptions();

        await using var app = RaeSiloHost.Build([], settings);
        await app.StartAsync(cancellationToken);
        output.WriteLine(SiloProcess.ReadyLine);
        output.Flush();
        await Console.In.ReadToEndAsync(cancellationToken);
        await app.StopAsync(CancellationToken.None);
        return 0;
    }

    private static string Required(CommandArguments arguments, string name) =>
        arguments.Option(name) ?? throw new UsageException($"--{name} is required");
}
