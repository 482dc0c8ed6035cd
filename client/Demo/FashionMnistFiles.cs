namespace RAE.Client.Demo;

/// <summary>
/// Where Debian's <c>dataset-fashion-mnist</c> package puts the IDX files, and the class names of Zalando's
/// Fashion-MNIST (the IDX labels are only the numbers 0..9).
/// </summary>
public static class FashionMnistFiles
{
    public const string DebianFolder = "/usr/share/datasets/fashion-mnist";

    public const string DebianPackage = "dataset-fashion-mnist";

    /// <summary>Label i of the IDX files is class <c>ClassNames[i]</c> (the dataset's README).</summary>
    public static IReadOnlyList<string> ClassNames { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    public static IReadOnlyList<string> RequiredFiles { get; } =
    [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
    ];

    /// <summary>The files of <see cref="RequiredFiles"/> missing from <paramref name="folder"/> (an uncompressed copy counts too).</summary>
    public static IReadOnlyList<string> Missing(string folder) =>
        RequiredFiles.Where(file => !File.Exists(Path.Combine(folder, file)) && !File.Exists(Path.Combine(folder, file[..^".gz".Length]))).ToList();

    /// <summary>True when every file is present.</summary>
    public static bool IsPresent(string folder) => Missing(folder).Count == 0;

    /// <summary>The message for a folder that lacks some files: names them and how Debian installs them.</summary>
    public static string MissingMessage(string folder, IReadOnlyList<string> missing) =>
        $"Fashion-MNIST is incomplete in {folder}: missing {string.Join(", ", missing)}. On Debian: apt-get install {DebianPackage} (it installs them in {DebianFolder})";
}
