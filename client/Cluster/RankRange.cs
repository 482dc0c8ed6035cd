using System.Globalization;
using RAE.Client.Commands;

namespace RAE.Client.Cluster;

/// <summary>How many ranks a training job asks for: exactly N ("N"), or from MIN to MAX ("MIN..MAX"): it starts once it
/// gets MIN and grows onto free devices up to MAX at its checkpoints.</summary>
public readonly record struct RankRange(int Min, int Max)
{
    public static RankRange Exactly(int ranks) => new(ranks, ranks);

    /// <summary><see cref="UsageException"/> naming the option and what is wrong.</summary>
    public static RankRange Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split("..");
        if (parts.Length > 2 || !parts.All(IsWholeNumber))
            throw new UsageException($"--ranks '{text}' is not a number of ranks: give N or MIN..MAX with whole numbers, for example 2 or 1..4");
        var numbers = parts.Select(part => int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value
            : throw new UsageException($"--ranks '{text}': {part} is too large")).ToArray();
        var range = new RankRange(numbers[0], numbers[^1]);
        if (range.Min < 1) throw new UsageException($"--ranks must be at least 1, got {range.Min}");
        if (range.Min > range.Max) throw new UsageException($"--ranks '{text}': MIN ({range.Min}) is larger than MAX ({range.Max})");
        return range;
    }

    public override string ToString() => Min == Max ? Max.ToString(CultureInfo.InvariantCulture) : string.Create(CultureInfo.InvariantCulture, $"{Min}..{Max}");

    private static bool IsWholeNumber(string part) => part.Length > 0 && part.All(char.IsAsciiDigit);
}
