namespace RAE.GrainInterfaces;

/// <summary>
/// Key of a grain that must live on one particular silo (rank grains, silo agents): the silo's parsable address, a '|',
/// then a suffix such as the device name. The silo-bound placement director reads the address back from the key.
/// </summary>
public static class SiloBoundKey
{
    public const char Separator = '|';

    public static string Create(SiloAddress silo, string suffix)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentException.ThrowIfNullOrWhiteSpace(suffix);
        return silo.ToParsableString() + Separator + suffix;
    }

    public static (SiloAddress Silo, string Suffix) Parse(string key)
    {
        var separator = key.IndexOf(Separator);
        if (separator <= 0 || separator == key.Length - 1)
            throw new ArgumentException($"Grain key '{key}' is not a silo-bound key of the form '<silo address>|<suffix>'.", nameof(key));
        SiloAddress silo;
        try
        {
            silo = SiloAddress.FromParsableString(key[..separator]);
        }
        catch (Exception error) when (error is FormatException or ArgumentException or IndexOutOfRangeException)
        {
            throw new ArgumentException($"Grain key '{key}' does not start with a silo address: {error.Message}", nameof(key), error);
        }
        return (silo, key[(separator + 1)..]);
    }

    /// <summary>Key of the agent grain that answers for a silo as a whole.</summary>
    public static string Agent(SiloAddress silo) => Create(silo, "agent");

    /// <summary>Key of the rank grain that drives one device of a silo.</summary>
    public static string Rank(SiloAddress silo, string device) => Create(silo, "rank:" + device);

    /// <summary>Key of the sampling worker grain that drives one device of a silo.</summary>
    public static string Sampler(SiloAddress silo, string device) => Create(silo, "sampler:" + device);

    /// <summary>Key of the shard encoder grain that drives one device of a silo.</summary>
    public static string Encoder(SiloAddress silo, string device) => Create(silo, "encoder:" + device);
}
