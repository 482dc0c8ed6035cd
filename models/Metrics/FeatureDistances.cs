using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Metrics;

/// <summary>
/// Image-set distances built from a feature extractor, the streaming moments and the Fréchet distance: the reference's
/// rFID and gFID on the FID InceptionV3, and the offline <c>fd_resnet18</c> and <c>rfd_resnet18</c>.
/// </summary>
public static class FeatureDistances
{
    /// <summary>
    /// Streams images through <paramref name="extract"/> in batches and accumulates the moments of the features;
    /// <paramref name="onFeatures"/>, when given, sees each batch's features (valid only during the call).
    /// </summary>
    public static FeatureMoments Moments(Func<Tensor, Tensor> extract, Tensor images, int batchSize, long featureDimension, Action<Tensor>? onFeatures = null)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be positive");
        if (images.dim() != 4 || images.shape[0] == 0)
            throw new ArgumentException($"images must be a non-empty 4-D batch, got [{string.Join(", ", images.shape)}]", nameof(images));
        var moments = FeatureMoments.Empty(featureDimension);
        try
        {
            for (long start = 0; start < images.shape[0]; start += batchSize)
            {
                using var scope = NewDisposeScope();
                var features = extract(images.narrow(0, start, Math.Min(batchSize, images.shape[0] - start)));
                onFeatures?.Invoke(features);
                moments.Add(features);
            }
            return moments;
        }
        catch
        {
            moments.Dispose();
            throw;
        }
    }

    /// <summary>
    /// rFID as <c>compute_reconstruction_metrics</c> gets it from torch-fidelity 0.3.0: Inception features of both uint8
    /// NHWC (or NCHW) sets, float32 means, np.cov, and the unclamped distance with the eps retry.
    /// </summary>
    public static double Rfid(FidInceptionV3 inception, Tensor reference, Tensor reconstruction, int batchSize)
    {
        using var referenceMoments = Moments(batch => inception.Features(batch, batchSize), reference, batchSize, FidInceptionV3.FeatureDimension);
        using var reconstructionMoments = Moments(batch => inception.Features(batch, batchSize), reconstruction, batchSize, FidInceptionV3.FeatureDimension);
        return Rfid(referenceMoments, reconstructionMoments);
    }

    /// <summary>rFID from the moments of both feature sets (torch-fidelity 0.3.0's statistics and distance).</summary>
    public static double Rfid(FeatureMoments referenceMoments, FeatureMoments reconstructionMoments)
    {
        using var referenceStatistics = referenceMoments.ToStatistics();
        using var reconstructionStatistics = reconstructionMoments.ToStatistics();
        using var referenceMean = referenceMoments.MeanFloat32();
        using var reconstructionMean = reconstructionMoments.MeanFloat32();
        return FrechetDistance.TorchFidelity(referenceMean, referenceStatistics.Sigma, reconstructionMean, reconstructionStatistics.Sigma);
    }

    /// <summary>
    /// <c>rfd_resnet18</c>, the offline rFID: <see cref="Rfid(FeatureMoments, FeatureMoments)"/>'s statistics and distance on
    /// <see cref="ResNet18Features"/> of the originals and their reconstructions (uint8, NHWC or NCHW). Not comparable with rFID.
    /// </summary>
    public static double RfdResNet18(ResNet18Features features, Tensor reference, Tensor reconstruction, int batchSize)
    {
        using var referenceMoments = Moments(batch => features.Features(batch, batchSize), reference, batchSize, ResNet18Features.FeatureDimension);
        using var reconstructionMoments = Moments(batch => features.Features(batch, batchSize), reconstruction, batchSize, ResNet18Features.FeatureDimension);
        return Rfid(referenceMoments, reconstructionMoments);
    }

    /// <summary>
    /// RAE's gFID (<c>calculate_gfid</c>): float64 moments of the generated images' Inception features against reference
    /// statistics (<c>mu</c>, <c>sigma</c>, e.g. from an ADM reference batch), clamped at 0.
    /// </summary>
    public static double Gfid(FidInceptionV3 inception, Tensor generated, FidStatistics reference, int batchSize)
    {
        using var moments = Moments(batch => inception.Features(batch, batchSize), generated, batchSize, FidInceptionV3.FeatureDimension);
        return Gfid(moments, reference);
    }

    /// <summary>gFID from the moments of the generated images' features against reference statistics (float64, clamped at 0).</summary>
    public static double Gfid(FeatureMoments generated, FidStatistics reference)
    {
        using var statistics = generated.ToStatistics();
        return FrechetDistance.Gfid(statistics.Mu, statistics.Sigma, reference.Mu, reference.Sigma);
    }

    /// <summary>
    /// <c>fd_resnet18</c>: the gFID formula (float64 moments, clamped at 0) on <see cref="ResNet18Features"/> of
    /// the images against reference statistics of the same features. Not comparable with FID.
    /// </summary>
    public static double FdResNet18(ResNet18Features features, Tensor images, FidStatistics reference, int batchSize)
    {
        if (reference.Mu.shape[0] != ResNet18Features.FeatureDimension)
            throw new ArgumentException(
                $"fd_resnet18 reference statistics must be {ResNet18Features.FeatureDimension}-d ResNet18 features, got {reference.Mu.shape[0]}-d (Inception statistics?)");
        using var moments = Moments(batch => features.Features(batch, batchSize), images, batchSize, ResNet18Features.FeatureDimension);
        return Gfid(moments, reference);
    }
}
