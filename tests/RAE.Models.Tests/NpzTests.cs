using System.Buffers.Binary;
using System.Text;
using RAE.Models.IO;
using static RAE.Models.Tests.CheckpointTestFiles;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class NpzTests
{
    private const int LocalHeaderLength = 30 + 9 + 20; // fixed part, "arr_0.npy", ZIP64 extra

    [Fact]
    public void Crc32MatchesTheStandardCheckValueAndCombines()
    {
        Assert.Equal(0xCBF43926u, Crc32.Compute("123456789"u8));
        var data = new byte[10_007];
        new Random(3).NextBytes(data);
        var whole = Crc32.Compute(data);
        foreach (var split in new[] { 0, 1, 7, 8, 4096, data.Length })
        {
            Assert.Equal(whole, Crc32.Append(Crc32.Compute(data.AsSpan(0, split)), data.AsSpan(split)));
            Assert.Equal(whole, Crc32.Combine(Crc32.Compute(data.AsSpan(0, split)), Crc32.Compute(data.AsSpan(split)), data.Length - split));
        }
    }

    [Fact]
    public void NpyHeaderIsWhatNumpyWrites()
    {
        // numpy 1.24: the dict literal, 21 - digits(N) spare spaces for growth, padding to 64 bytes, newline.
        var header = NpyFormat.BuildHeader(new NpyHeader(ScalarType.Byte, false, [2, 4, 5, 3]));
        const string dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 5, 3), }";
        Assert.Equal(128, header.Length);
        Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0, 118, 0 }, header[..10]);
        Assert.Equal(dict + new string(' ', 128 - 10 - dict.Length - 1) + "\n", Encoding.ASCII.GetString(header, 10, 118));

        var large = NpyFormat.BuildHeader(new NpyHeader(ScalarType.Byte, false, [50_000, 256, 256, 3]));
        Assert.Equal(128, large.Length);
        Assert.StartsWith("{'descr': '|u1', 'fortran_order': False, 'shape': (50000, 256, 256, 3), }", Encoding.ASCII.GetString(large, 10, 118));
        Assert.Equal("{'descr': '<f8', 'fortran_order': False, 'shape': (7,), }",
            Encoding.ASCII.GetString(NpyFormat.BuildHeader(new NpyHeader(ScalarType.Float64, false, [7])), 10, 57));
    }

    [Fact]
    public void StreamedImagesRoundTripAndTheFileIsAStoredZipWithAPatchedHeader()
    {
        using var scope = NewDisposeScope();
        var images = TestImages(6, 8, 6);
        var path = TemporaryPath(".npz");
        try
        {
            using (var writer = NpzWriter.Create(path))
            {
                using (var stream = writer.BeginArray("arr_0", ScalarType.Byte, [8, 6, 3]))
                {
                    foreach (var (start, count) in new[] { (0, 2), (2, 3), (5, 1) }) stream.Append(images.narrow(0, start, count));
                    Assert.Equal(6, stream.Count);
                }
                writer.Complete();
            }

            var bytes = File.ReadAllBytes(path);
            Assert.Equal(0x04034b50u, BinaryPrimitives.ReadUInt32LittleEndian(bytes));
            Assert.Equal(0, BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8))); // stored, not deflated
            Assert.Equal("arr_0.npy", Encoding.ASCII.GetString(bytes, 30, 9));
            var entrySize = 128 + 6 * 8 * 6 * 3;
            Assert.Equal(entrySize, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(30 + 9 + 4)));
            var entry = bytes.AsSpan(LocalHeaderLength, entrySize);
            Assert.Equal(Crc32.Compute(entry), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(14)));
            Assert.StartsWith("{'descr': '|u1', 'fortran_order': False, 'shape': (6, 8, 6, 3), }", Encoding.ASCII.GetString(entry[10..128]));
            Assert.Equal(images.bytes.ToArray(), entry[128..].ToArray());

            var loaded = NpzReader.LoadAll(path);
            Assert.Equal(new[] { "arr_0" }, loaded.Keys);
            AssertBitExact(images, loaded["arr_0"], "arr_0");
            loaded["arr_0"].Dispose();
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void BatchReadingStreamsTheFirstAxis()
    {
        using var scope = NewDisposeScope();
        var images = TestImages(7, 4, 4);
        var path = TemporaryPath(".npz");
        try
        {
            using (var writer = NpzWriter.Create(path))
            {
                writer.WriteArray("arr_0", images);
                writer.Complete();
            }
            using var reader = NpzReader.Open(path);
            Assert.Equal(new long[] { 7, 4, 4, 3 }, reader.GetHeader("arr_0").Shape);
            var batches = reader.ReadBatches("arr_0", 3).ToList();
            Assert.Equal(new long[] { 3, 3, 1 }, batches.Select(b => b.shape[0]));
            AssertBitExact(images, cat(batches, 0), "arr_0");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void FidStatisticsAndOtherDtypesRoundTrip()
    {
        using var scope = NewDisposeScope();
        var arrays = new Dictionary<string, Tensor>
        {
            ["mu"] = linspace(-1, 1, 8, dtype: float64),
            ["sigma"] = randn(8, 8, dtype: float64),
            ["f32"] = randn(2, 3),
            ["i64"] = arange(5, dtype: int64),
            ["flags"] = tensor(new[] { true, false }),
            ["scalar"] = tensor(3.5),
        };
        var path = TemporaryPath(".npz");
        try
        {
            using (var writer = NpzWriter.Create(path))
            {
                foreach (var (key, array) in arrays) writer.WriteArray(key, array);
                writer.Complete();
            }
            var loaded = NpzReader.LoadAll(path);
            Assert.Equal(arrays.Keys, loaded.Keys);
            foreach (var (key, array) in arrays) AssertBitExact(array, loaded[key], key);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void FortranOrderNpyIsReadInCOrder()
    {
        using var scope = NewDisposeScope();
        var path = TemporaryPath(".npy");
        try
        {
            var expected = arange(6, dtype: float32).view(2, 3);
            using (var file = File.Create(path))
            {
                file.Write(NpyFormat.BuildHeader(new NpyHeader(ScalarType.Float32, true, [2, 3])));
                file.Write(expected.t().contiguous().bytes); // column-major: 0, 3, 1, 4, 2, 5
            }
            using var reader = NpzReader.Open(path);
            AssertBitExact(expected, reader.ReadArray("arr_0"), "fortran");
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void AbandonedWriterLeavesNoFileAndBadBatchesAreRejected()
    {
        using var scope = NewDisposeScope();
        var directory = Directory.CreateTempSubdirectory("rae-npz-").FullName;
        var path = Path.Combine(directory, "samples.npz");
        try
        {
            using (var writer = NpzWriter.Create(path))
            {
                using var stream = writer.BeginArray("arr_0", ScalarType.Byte, [4, 4, 3]);
                stream.Append(TestImages(1, 4, 4));
                Assert.Throws<ArgumentException>(() => stream.Append(TestImages(1, 4, 5)));
                Assert.Throws<ArgumentException>(() => stream.Append(zeros(1, 4, 4, 3)));
                Assert.Throws<InvalidOperationException>(() => writer.Complete());
            }
            Assert.Empty(Directory.GetFiles(directory));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void CorruptOrMissingArraysGiveClearErrors()
    {
        using var scope = NewDisposeScope();
        var path = TemporaryPath(".npz");
        try
        {
            using (var writer = NpzWriter.Create(path))
            {
                writer.WriteArray("mu", zeros(4, dtype: float64));
                writer.Complete();
            }
            using (var reader = NpzReader.Open(path))
            {
                var missing = Assert.Throws<KeyNotFoundException>(() => reader.ReadArray("sigma"));
                Assert.Contains("no array 'sigma' (arrays: mu)", missing.Message);
            }
            var bytes = File.ReadAllBytes(path);
            File.WriteAllBytes(path, bytes[..(bytes.Length - 30)]);
            var truncated = Assert.Throws<CheckpointFormatException>(() => NpzReader.LoadAll(path));
            Assert.Contains(path, truncated.Message);
            File.WriteAllText(path, "not an archive");
            Assert.Contains(path, Assert.Throws<CheckpointFormatException>(() => NpzReader.LoadAll(path)).Message);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void ImageWriterAndFidStatisticsUseTheReferenceKeys()
    {
        using var scope = NewDisposeScope();
        var images = TestImages(4, 5, 5);
        var samples = TemporaryPath(".npz");
        var reference = TemporaryPath(".npz");
        try
        {
            using (var writer = Npz.BeginImages(samples, 5, 5))
            {
                writer.Append(images.narrow(0, 0, 3));
                writer.Append(images.narrow(0, 3, 1));
                Assert.Equal(4, writer.Count);
                writer.Complete();
            }
            var loaded = Npz.Load(samples);
            AssertBitExact(images, loaded[Npz.ImagesKey], "arr_0");

            var sigma = eye(3, dtype: float32);
            Npz.Save(reference, [new("mu", arange(3, dtype: float32)), new("sigma", sigma)]);
            using (var stats = Npz.LoadFidStatistics(reference))
            {
                Assert.Equal(ScalarType.Float64, stats.Mu.dtype);
                AssertBitExact(eye(3, dtype: float64), stats.Sigma, "sigma");
            }
            Npz.Save(reference, [new("mu", arange(3, dtype: float64)), new("sigma", eye(4, dtype: float64))]);
            var mismatch = Assert.Throws<CheckpointFormatException>(() => Npz.LoadFidStatistics(reference));
            Assert.Contains("'mu' [3] and 'sigma' [4, 4]", mismatch.Message);
        }
        finally
        {
            File.Delete(samples);
            File.Delete(reference);
        }
    }

    [NumpyFact]
    public void NumpyReadsOurNpzAndWeReadNumpysNpz()
    {
        using var scope = NewDisposeScope();
        var images = TestImages(5, 6, 4);
        var ours = TemporaryPath(".npz");
        var theirs = TemporaryPath(".npz");
        try
        {
            using (var writer = NpzWriter.Create(ours))
            {
                using (var stream = writer.BeginArray("arr_0", ScalarType.Byte, [6, 4, 3]))
                {
                    stream.Append(images.narrow(0, 0, 2));
                    stream.Append(images.narrow(0, 2, 3));
                }
                writer.WriteArray("mu", ExactMu());
                writer.Complete();
            }
            const string script = """
                import sys, zipfile, numpy as np
                ours, theirs = sys.argv[1], sys.argv[2]
                expected = (np.arange(5 * 6 * 4 * 3, dtype=np.int64) * 7 % 256).astype(np.uint8).reshape(5, 6, 4, 3)
                with np.load(ours) as data:
                    assert sorted(data.files) == ['arr_0', 'mu'], data.files
                    assert data['arr_0'].dtype == np.uint8 and data['arr_0'].shape == (5, 6, 4, 3)
                    assert np.array_equal(data['arr_0'], expected)
                    assert np.array_equal(data['mu'], np.arange(8) * 0.25 - 1)
                with zipfile.ZipFile(ours) as archive:
                    assert archive.testzip() is None
                    assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
                np.savez(theirs, expected, mu=np.arange(8) * 0.25 - 1, sigma=np.eye(3))
                with zipfile.ZipFile(theirs) as archive:
                    sys.stdout.write(archive.read('arr_0.npy')[:128].hex())
                """;
            var numpyHeader = Convert.FromHexString(PythonWithNumpy.Run(script, ours, theirs).Trim());
            Assert.Equal(numpyHeader, NpyFormat.BuildHeader(new NpyHeader(ScalarType.Byte, false, [5, 6, 4, 3])));

            var loaded = NpzReader.LoadAll(theirs);
            Assert.Equal(new[] { "arr_0", "mu", "sigma" }, loaded.Keys.Order(StringComparer.Ordinal));
            AssertBitExact(images, loaded["arr_0"], "arr_0");
            AssertBitExact(ExactMu(), loaded["mu"], "mu");
            AssertBitExact(eye(3, dtype: float64), loaded["sigma"], "sigma");
        }
        finally
        {
            File.Delete(ours);
            File.Delete(theirs);
        }
    }

    private static Tensor ExactMu() => arange(8, dtype: float64).mul(0.25).sub(1);

    private static Tensor TestImages(int count, int height, int width) =>
        arange(count * height * width * 3, dtype: int64).mul(7).remainder(256).to(ScalarType.Byte).view(count, height, width, 3);
}
