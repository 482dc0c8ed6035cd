using System.Text;
using RAE.Grains.Datasets;
using RAE.Grains.Storage;
using RAE.Grains.Workers.Stage2;
using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Grains.Workers.Stage1;

/// <summary>
/// Stage 1 training images from an image dataset in the cluster's blob store, defined per global sample so that the
/// result never depends on how many ranks share a batch:
/// <list type="bullet">
/// <item>Order: a permutation of the dataset per epoch from a generator seeded by (job seed, epoch) (DistributedSampler with
/// shuffle and drop_last, taken over the whole group); the global batch of step s (1-based) is positions [(s−1)·G, s·G) of the
/// concatenated epochs, and global slot k of it belongs to the rank whose shard holds k.</item>
/// <item>Transform: the reference's Stage 1 resize (shorter side to 1.5·size, 384 for 256) and random crop, its offsets from
/// <see cref="DataRandom.ForSample"/>(job seed, epoch, dataset index); no flip, as the reference.</item>
/// </list>
/// Shards are read on first use (checked against the manifest's SHA-256) and a few are kept decoded-ready in memory.
/// </summary>
public sealed class DatasetImageStream
{
    private const ulong EpochStream = 0x73746731657063UL;
    private const int CachedShards = 8;

    private readonly IBlobStore _store;
    private readonly DatasetManifest _manifest;
    private readonly long[] _shardStarts;
    private readonly Dictionary<int, IReadOnlyList<ShardImage>> _shards = [];
    private readonly LinkedList<int> _recent = new();
    private readonly SafeImageDecoder _decoder = new();
    private long _cachedEpoch = -1;
    private long[] _permutation = [];

    public DatasetImageStream(IBlobStore store, string dataset, int imageSize, long seed, int globalBatch, int expectedImages)
        : this(store, dataset, imageSize, seed, globalBatch, (int?)expectedImages, "data.name")
    {
    }

    /// <summary>A dataset read only through <see cref="CenterCropped"/> (held-out evaluation images, named by <paramref name="key"/>), of any size.</summary>
    public static DatasetImageStream ForEvaluation(IBlobStore store, string dataset, int imageSize, string key) =>
        new(store, dataset, imageSize, seed: 0, globalBatch: 1, expectedImages: null, key);

    private DatasetImageStream(IBlobStore store, string dataset, int imageSize, long seed, int globalBatch, int? expectedImages, string key)
    {
        _store = store ?? throw new ArgumentNullException(nameof(store));
        if (imageSize <= 0) throw new ArgumentOutOfRangeException(nameof(imageSize), imageSize, "the image size must be positive");
        BlobContent content;
        try
        {
            content = _store.GetAsync(DatasetBlobs.ManifestPathOf(dataset)).GetAwaiter().GetResult();
        }
        catch (BlobNotFoundException)
        {
            throw new ArgumentException($"{key}: the cluster has no dataset '{dataset}' (rae datasets list shows those it has)");
        }
        _manifest = DatasetManifest.FromJson(Encoding.UTF8.GetString(content.Data), $"the manifest of dataset '{dataset}'");
        if (expectedImages is not null && _manifest.ImageCount != expectedImages)
            throw new ArgumentException($"dataset '{dataset}' holds {_manifest.ImageCount} images, but the job was submitted for data.num_samples {expectedImages} (was it replaced since?)");
        if (_manifest.ImageCount < globalBatch)
            throw new ArgumentException($"dataset '{dataset}' holds {_manifest.ImageCount} images, fewer than the global batch {globalBatch} (drop_last would leave no batch)");
        _shardStarts = new long[_manifest.Shards.Count + 1];
        for (var i = 0; i < _manifest.Shards.Count; i++) _shardStarts[i + 1] = _shardStarts[i] + _manifest.Shards[i].Images;
        ImageSize = imageSize;
        Seed = seed;
        GlobalBatch = globalBatch;
    }

    public int ImageSize { get; }
    public long Seed { get; }
    public int GlobalBatch { get; }
    public int ImageCount => _manifest.ImageCount;
    public long StepsPerEpoch => ImageCount / GlobalBatch;

    public long EpochOf(long step) => (step - 1) / StepsPerEpoch;

    /// <summary>The dataset index at slot <paramref name="slot"/> of the global batch of step <paramref name="step"/> (1-based).</summary>
    public long DatasetIndex(long step, int slot)
    {
        if (step < 1) throw new ArgumentOutOfRangeException(nameof(step), step, "steps are counted from 1");
        if (slot < 0 || slot >= GlobalBatch) throw new ArgumentOutOfRangeException(nameof(slot), slot, $"slot must lie in [0, {GlobalBatch})");
        var offset = (step - 1) % StepsPerEpoch * GlobalBatch + slot;
        return Permutation(EpochOf(step))[offset];
    }

    /// <summary>Images [count, 3, size, size] in [0, 1] of slots [firstSlot, +count) of step <paramref name="step"/>, randomly cropped.</summary>
    public Tensor Batch(long step, int firstSlot, int count, Device device)
    {
        using var scope = NewDisposeScope();
        var epoch = EpochOf(step);
        var images = new Tensor[count];
        for (var i = 0; i < count; i++)
        {
            var index = DatasetIndex(step, firstSlot + i);
            images[i] = ImageTransforms.Stage1RandomCrop(Decode(index), ImageSize, DataRandom.ForSample(Seed, epoch, index)).ToTensor();
        }
        return stack(images).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>Dataset images [indices.Count, 3, size, size], ADM center-cropped (the reconstruction grid's fixed inputs).</summary>
    public Tensor CenterCropped(IReadOnlyList<long> indices, Device device)
    {
        using var scope = NewDisposeScope();
        var images = indices.Select(index => ImageTransforms.AdmCenterCrop(Decode(index), ImageSize).ToTensor()).ToArray();
        return stack(images).to(device).MoveToOuterDisposeScope();
    }

    private RgbImage Decode(long index)
    {
        var shard = Array.BinarySearch(_shardStarts, index);
        shard = shard >= 0 ? shard : ~shard - 1;
        while (_manifest.Shards[shard].Images == 0) shard++;
        var image = Shard(shard)[(int)(index - _shardStarts[shard])];
        var decoded = _decoder.Decode(image.Encoded);
        return decoded.Image ?? throw new InvalidDataException($"dataset '{_manifest.Name}': stored image {image.Name} no longer decodes: {decoded.Failure}");
    }

    private IReadOnlyList<ShardImage> Shard(int shard)
    {
        if (_shards.TryGetValue(shard, out var images))
        {
            _recent.Remove(shard);
            _recent.AddFirst(shard);
            return images;
        }
        var entry = _manifest.Shards[shard];
        var bytes = _store.GetAsync(DatasetBlobs.ShardPathOf(_manifest.Name, entry.File)).GetAwaiter().GetResult().Data;
        images = _manifest.ReadShard(entry, bytes);
        _shards[shard] = images;
        _recent.AddFirst(shard);
        if (_recent.Count > CachedShards)
        {
            _shards.Remove(_recent.Last!.Value);
            _recent.RemoveLast();
        }
        return images;
    }

    private long[] Permutation(long epoch)
    {
        if (epoch == _cachedEpoch) return _permutation;
        using var generator = new Generator(SyntheticLatentStream.Mix(EpochStream, (ulong)Seed, (ulong)epoch, 0), CPU);
        using var order = randperm(ImageCount, generator: generator);
        _permutation = order.data<long>().ToArray();
        _cachedEpoch = epoch;
        return _permutation;
    }
}
