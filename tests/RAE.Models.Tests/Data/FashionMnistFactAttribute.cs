namespace RAE.Models.Tests.Data;

/// <summary>A fact that needs the real Fashion-MNIST IDX files (Debian package dataset-fashion-mnist); skipped with the reason otherwise.</summary>
public sealed class FashionMnistFactAttribute : FactAttribute
{
    public const string Folder = "/usr/share/datasets/fashion-mnist";

    public FashionMnistFactAttribute()
    {
        if (!File.Exists(Path.Combine(Folder, "t10k-images-idx3-ubyte.gz")))
            Skip = $"Fashion-MNIST is not installed ({Folder}/t10k-images-idx3-ubyte.gz missing; `apt-get install dataset-fashion-mnist`)";
    }
}
