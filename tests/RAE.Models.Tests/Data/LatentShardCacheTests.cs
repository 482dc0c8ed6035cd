using Microsoft.Extensions.Logging.Abstractions;
using RAE.Models.Data;
using static TorchSharp.torch;

namespace RAE.Models.Tests.Data;

/// <summary>The local latent shard cache (fetch once, verify, refetch a corrupt file) and the row reader behind it.</summary>
public sealed class LatentShardCacheTests : IDisposable
{
    private readonly string _folder = Path.Combine(Path.GetTempPath(), "rae-latent-cache-tests-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<string, byte[]> _storage = new(StringComparer.Ordinal);
    private int _storageReads;

    public void Dispose()
    {
        if (Directory.Exists(_folder)) Directory.Delete(_folder, recursive: true);
    }

    private LatentShardCache NewCache() => new(Path.Combine(_folder, "cache"), (entry, _) =>
    {
        Interlocked.Increment(ref _storageReads);
        return Task.FromResult(_storage[entry.File]);
    }, NullLogger.Instance);

    /// <summary>Two shards (3 and 2 latents of [2, 2, 2]), with flipped latents, labels 0..4 and 5 classes.</summary>
    private LatentDatasetManifest Dataset(ScalarType dtype, out Tensor all, out Tensor allFlipped)
    {
        using var generator = new Generator(17);
        all = randn([5, 2, 2, 2], generator: generator).to(dtype);
        allFlipped = all.flip(-1).contiguous();
        var shards = new List<LatentShardEntry>();
        foreach (var (file, start, count) in new[] { ("shard-00000.safetensors", 0, 3), ("shard-00001.safetensors", 3, 2) })
        {
            var bytes = LatentShard.Write(all.narrow(0, start, count), Enumerable.Range(start, count).Select(i => (long)i).ToArray(), allFlipped.narrow(0, start, count));
            _storage[file] = bytes;
            shards.Add(new LatentShardEntry(file, file.Replace(".safetensors", ".bin"), count, bytes.LongLength, DatasetManifest.Sha256Hex(bytes)));
        }
        return new LatentDatasetManifest
        {
            Name = "tiny-latents", Dataset = "tiny", DatasetManifestSha256 = new string('0', 64), Encoder = "resnet18", ConfigSha256 = new string('1', 64),
            ImageSize = 64, LatentShape = [2, 2, 2], DType = dtype == ScalarType.BFloat16 ? "bfloat16" : "float32", Flips = true,
            Classes = ["a", "b", "c", "d", "e"], CountsPerClass = [1, 1, 1, 1, 1], Shards = shards,
        };
    }

    [Fact]
    public async Task ShardIsFetchedOnceThenServedFromDiskAndACorruptCopyIsFetchedAgain()
    {
        var manifest = Dataset(ScalarType.Float32, out var all, out var flipped);
        using (all)
        using (flipped)
        {
            var entry = manifest.Shards[0];
            var first = NewCache();
            var path = await first.GetAsync(entry, manifest.Name);
            Assert.Equal(_storage[entry.File], await File.ReadAllBytesAsync(path));
            Assert.Equal(path, await first.GetAsync(entry, manifest.Name));
            Assert.Equal((1, 1), (first.Fetches, _storageReads));

            // A new process (new cache over the same folder) verifies the file and does not fetch it.
            var second = NewCache();
            Assert.Equal(path, await second.GetAsync(entry, manifest.Name));
            Assert.Equal((0, 0, 1), (second.Fetches, second.Refetches, _storageReads));

            // A damaged copy is detected by its checksum and replaced.
            var damaged = await File.ReadAllBytesAsync(path);
            damaged[^1] ^= 0x5A;
            await File.WriteAllBytesAsync(path, damaged);
            var third = NewCache();
            Assert.Equal(path, await third.GetAsync(entry, manifest.Name));
            Assert.Equal((1, 1, 2), (third.Fetches, third.Refetches, _storageReads));
            Assert.Equal(_storage[entry.File], await File.ReadAllBytesAsync(path));
        }
    }

    [Fact]
    public async Task ShardWhoseBytesDoNotMatchTheManifestIsRefusedNamingIt()
    {
        var manifest = Dataset(ScalarType.Float32, out var all, out var flipped);
        using (all)
        using (flipped)
        {
            _storage["shard-00001.safetensors"] = _storage["shard-00000.safetensors"];
            var cache = NewCache();
            var error = await Assert.ThrowsAsync<InvalidDataException>(() => cache.GetAsync(manifest.Shards[1], manifest.Name));
            Assert.Contains("'tiny-latents' shard shard-00001.safetensors fails its checksum", error.Message);
            Assert.False(File.Exists(cache.PathOf(manifest.Shards[1])), "a shard failing its checksum must not be cached");
        }
    }

    [Theory]
    [InlineData(ScalarType.Float32)]
    [InlineData(ScalarType.BFloat16)]
    public async Task ReaderReturnsTheStoredRowsAsFloat32WithLabelsAcrossShards(ScalarType dtype)
    {
        var manifest = Dataset(dtype, out var all, out var flipped);
        using (all)
        using (flipped)
        {
            using var reader = new LatentDatasetReader(manifest, NewCache());
            var rows = await reader.ReadAsync([(4, false), (0, true), (2, false), (3, true)]);
            Assert.Equal([4L, 2, 2, 2], rows.Shape);
            Assert.Equal([4L, 0, 2, 3], rows.Labels);
            using var expected = stack([all[4], flipped[0], all[2], flipped[3]]).to(ScalarType.Float32);
            Assert.Equal(expected.data<float>().ToArray(), rows.Latents);
        }
    }

    [Fact]
    public async Task LabelOutsideTheManifestClassesIsRefused()
    {
        var manifest = Dataset(ScalarType.Float32, out var all, out var flipped);
        using (all)
        using (flipped)
        {
            using var reader = new LatentDatasetReader(manifest with { Classes = ["a", "b", "c", "d"], CountsPerClass = [2, 1, 1, 1] }, NewCache());
            var error = await Assert.ThrowsAsync<InvalidDataException>(() => reader.ReadAsync([(4, false)]));
            Assert.Contains("label 4, outside its 4 classes", error.Message);
        }
    }

    [Fact]
    public void NormalisationIsTheReferenceFormula()
    {
        using var generator = new Generator(3);
        using var latents = randn([3, 2, 2, 2], generator: generator);
        using var mean = randn([2, 2, 2], generator: generator);
        using var variance = rand([2, 2, 2], generator: generator);
        using var normalization = new LatentNormalization(mean, variance, 1e-5, "test");
        using var actual = normalization.Apply(latents);
        using var expected = (latents - mean) / (variance + 1e-5).sqrt();
        Assert.True(actual.allclose(expected, rtol: 0, atol: 1e-6));
    }
}
