using System.CommandLine;
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
    private readonly Option<string> _clusterId = new("--cluster-id") { HelpName = "ID", Description = "Cluster and service id", Required = true };
    private readonly Option<string> _data = new("--data") { HelpName = "DIR", Description = "The silo's data folder", Required = true };
    private readonly Option<int> _siloPort = Port("--silo-port", "Silo-to-silo port");
    private readonly Option<int> _gatewayPort = Port("--gateway-port", "Client gateway port");
    private readonly Option<int> _webPort = Port("--web-port", "Dashboard and health port");
    private readonly Option<int> _primaryPort = Port("--primary-port", "Silo port of the primary silo (localhost clustering)");
    private readonly Option<int> _threads = new("--threads") { HelpName = "N", Description = "Threads per rank", DefaultValueFactory = _ => 1 };
    private readonly Option<string[]> _settings = CliOptions.Repeatable("--set", "KEY=VALUE", "Override any silo setting, for example Rae:Silo:ClusterMode=Azure (repeatable)");

    public BenchSiloCommand() =>
        Command = new Command("silo", "(internal) one silo process of `bench cluster`")
        {
            _clusterId, _data, _siloPort, _gatewayPort, _webPort, _primaryPort, _threads, _settings,
        };

    public string Name => "bench silo";

    public Command Command { get; }

    public async Task<int> RunAsync(ParseResult parsed, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var clusterId = parsed.GetRequiredValue(_clusterId);
        var settings = new Dictionary<string, string?>
        {
            ["Rae:Silo:ClusterMode"] = "Embedded",
            ["Rae:Silo:ClusterId"] = clusterId,
            ["Rae:Silo:ServiceId"] = clusterId,
            ["Rae:Silo:DataFolder"] = parsed.GetRequiredValue(_data),
            ["Rae:Silo:SiloPort"] = Text(parsed.GetValue(_siloPort)),
            ["Rae:Silo:GatewayPort"] = Text(parsed.GetValue(_gatewayPort)),
            ["Rae:Silo:WebPort"] = Text(parsed.GetValue(_webPort)),
            ["Rae:Silo:PrimarySiloPort"] = Text(parsed.GetValue(_primaryPort)),
            ["Rae:Silo:ThreadsPerRank"] = Text(parsed.GetValue(_threads)),
            ["Rae:Silo:Devices:0"] = "cpu",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var setting in parsed.GetRequiredValue(_settings))
        {
            var equals = setting.IndexOf('=');
            if (equals <= 0) throw new UsageException($"--set expects KEY=VALUE (for example Rae:Silo:ClusterMode=Azure), got '{setting}'");
            settings[setting[..equals]] = setting[(equals + 1)..];
        }

        await using var app = RaeSiloHost.Build([], settings);
        await app.StartAsync(cancellationToken);
        output.WriteLine(SiloProcess.ReadyLine);
        output.Flush();
        await Console.In.ReadToEndAsync(cancellationToken);
        await app.StopAsync(CancellationToken.None);
        return 0;
    }

    private static Option<int> Port(string name, string description) => new(name) { HelpName = "PORT", Description = description, Required = true };

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
}
