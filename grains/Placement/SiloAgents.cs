using RAE.GrainInterfaces;

namespace RAE.Grains.Placement;

/// <summary>Asks the agent grain of every active silo, in parallel; how jobs discover devices and workloads.</summary>
public static class SiloAgents
{
    public static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The answers of the silos that gave one within <see cref="AnswerTimeout"/>; each silo that failed or was too
    /// slow is reported to <paramref name="onSkipped"/> and left out.</summary>
    public static async Task<List<T>> AskEveryActiveSiloAsync<T>(IGrainFactory grains, Func<ISiloAgentGrain, Task<T>> ask,
        Action<Exception, SiloAddress> onSkipped) where T : class
    {
        var hosts = await grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true);
        var answers = await Task.WhenAll(hosts.Keys.Select(async silo =>
        {
            try
            {
                return await ask(grains.GetGrain<ISiloAgentGrain>(SiloBoundKey.Agent(silo))).WaitAsync(AnswerTimeout);
            }
            catch (Exception error)
            {
                onSkipped(error, silo);
                return null;
            }
        }));
        return answers.OfType<T>().ToList();
    }

    /// <summary>Every device of the given silos, spread over silos first: device i of each silo before device i+1.</summary>
    public static IEnumerable<(string SiloAddress, SiloAddress Silo, string Device)> SpreadOverSilos(IEnumerable<SiloComputeInfo> silos) => silos
        .SelectMany(info => info.Devices.Select((device, index) => (Info: info, Device: device, Index: index)))
        .OrderBy(entry => entry.Index).ThenBy(entry => entry.Info.SiloAddress, StringComparer.Ordinal)
        .Select(entry => (entry.Info.SiloAddress, SiloAddress.FromParsableString(entry.Info.SiloAddress), entry.Device));
}
