namespace RAE.Models.IO;

/// <summary>
/// The limits every file reader enforces before it trusts a crafted or corrupted file: how deep values may nest, how
/// large declared sizes may be compared with the bytes really present, how many zip entries an archive may list.
/// A file that breaks one fails with a <see cref="CheckpointFormatException"/> whose <see cref="CheckpointFormatException.Limit"/>
/// names the property below. The defaults accept every file the reference and this project write.
/// </summary>
public sealed record ReaderLimits
{
    public static readonly ReaderLimits Default = new();

    /// <summary>
    /// How deep pickled containers (tuples, lists, dicts, sets, objects) may nest. Real checkpoints nest fewer than ten
    /// levels; the limit keeps every later tree walk far from the thread's stack size.
    /// </summary>
    public int MaxPickleNestingDepth { get; init; } = 200;

    /// <summary>
    /// Most nodes (containers and leaves) the unpickled tree may hold when walked as a tree, a container shared through
    /// the memo counted once per place it appears. A full training checkpoint holds tens of thousands; shared lists
    /// nested 60 deep stand for 2^60 in a few hundred bytes.
    /// </summary>
    public long MaxPickleTreeNodes { get; init; } = 10_000_000;

    /// <summary>Most elements a tuple used as a dict key or set item may hold in all (Python keys are strings, ints or small tuples).</summary>
    public int MaxPickleKeyElements { get; init; } = 4096;

    /// <summary>Most decimal digits of a text-encoded pickle integer (Python's own int/str conversion limit is 4300).</summary>
    public int MaxPickleIntegerDigits { get; init; } = 4300;

    /// <summary>Most elements a tensor view may hold per element of its storage (1: stride-0 or overlapping views may not expand beyond the storage).</summary>
    public long MaxViewExpansion { get; init; } = 1;

    /// <summary>Most entries a zip archive (.pt, .npz) may list.</summary>
    public int MaxZipEntries { get; init; } = 200_000;

    /// <summary>
    /// Most uncompressed bytes per compressed byte of a zip entry. Deflate cannot exceed about 1032, so a larger
    /// declared size is a lie; the default also refuses the extreme ratios of zip bombs.
    /// </summary>
    public double MaxZipCompressionRatio { get; init; } = 1100;

    /// <summary>Largest pickle (<c>data.pkl</c>) a .pt archive may hold.</summary>
    public long MaxPickleBytes { get; init; } = 1L << 30;

    /// <summary>Largest safetensors JSON header.</summary>
    public long MaxSafeTensorsHeaderBytes { get; init; } = 100L * 1024 * 1024;

    /// <summary>Largest .npy header (numpy itself refuses headers over 10000 bytes unless told otherwise).</summary>
    public int MaxNpyHeaderBytes { get; init; } = 10_000;

    /// <summary>Most dimensions a tensor or array may declare.</summary>
    public int MaxDimensions { get; init; } = 64;
}
