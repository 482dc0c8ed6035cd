using RAE.Models.Data;

namespace RAE.Client.Demo;

/// <summary>
/// The first <see cref="PerClass"/> images of every class of <paramref name="source"/>, in the source's order (a
/// class-balanced subset of a shuffled dataset such as Fashion-MNIST). Stops reading the source once every class is full.
/// </summary>
public sealed class BalancedSubsetSource(IImageSource source, int perClass) : IImageSource
{
    public int PerClass { get; } = perClass > 0 ? perClass : throw new ArgumentOutOfRangeException(nameof(perClass), perClass, "images per class must be positive");

    public string Description => $"{source.Description} (first {PerClass} per class)";

    public IReadOnlyList<string> Classes => source.Classes;

    public IEnumerable<SourceImage> Images()
    {
        var taken = new int[source.Classes.Count];
        var full = 0;
        foreach (var image in source.Images())
        {
            if (full == taken.Length) yield break;
            if (image.Label < 0 || image.Label >= taken.Length || taken[image.Label] == PerClass) continue;
            if (++taken[image.Label] == PerClass) full++;
            yield return image;
        }
    }
}
