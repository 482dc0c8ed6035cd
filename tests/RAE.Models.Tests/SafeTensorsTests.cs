using RAE.Models.IO;
using static TorchSharp.torch;

namespace RAE.Models.Tests;

public sealed class SafeTensorsTests
{
    [Fact]
    public void LoadsFixtureWeightsWithReferenceKeysAndShapes()
    {
        var tensors = SafeTensors.Load(Path.Combine(Fixtures.Case("ddt_tiny"), "weights.safetensors"));
        try
        {
            Assert.Equal(new long[] { 1, 16, 64 }, tensors["pos_embed"].shape);
            Assert.Equal(new long[] { 96, 8, 1, 1 }, tensors["x_embedder.proj.weight"].shape);
            Assert.Equal(ScalarType.Float32, tensors["t_embedder.W"].dtype);
        }
        finally
        {
            foreach (var tensor in tensors.Values) tensor.Dispose();
        }
    }

    [Fact]
    public void RoundTripsEveryDtypeBitExactly()
    {
        using var scope = NewDisposeScope();
        var original = new Dictionary<string, Tensor>
        {
            ["a.float"] = randn(3, 4),
            ["b.half"] = randn(5).to(float16),
            ["c.bf16"] = randn(2, 2).to(bfloat16),
            ["d.long"] = arange(7, dtype: int64),
            ["e.byte"] = arange(9, dtype: uint8),
            ["f.bool"] = tensor(new[] { true, false, true }),
        };
        var path = Path.Combine(Path.GetTempPath(), $"rae-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafeTensors.Save(path, original, new Dictionary<string, string> { ["format"] = "pt" });
            var loaded = SafeTensors.Load(path);
            Assert.Equal(original.Keys, loaded.Keys);
            foreach (var (name, tensor) in original)
            {
                Assert.Equal(tensor.dtype, loaded[name].dtype);
                Assert.True(tensor.equal(loaded[name]).all().item<bool>(), name);
                loaded[name].Dispose();
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SavingStreamsTensorsWithoutCopyingThemIntoManagedMemory()
    {
        using var scope = NewDisposeScope();
        // 4 × 8 MiB: a training state streams tensor by tensor (a DiT^DH-S state is over 3 GB, more than an array holds).
        var tensors = Enumerable.Range(0, 4).Select(i => KeyValuePair.Create($"t{i}", full(2 * 1024 * 1024, (float)i))).ToList();
        using var sink = new CountingStream();
        var before = GC.GetAllocatedBytesForCurrentThread();
        SafeTensors.Save(sink, tensors);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.True(sink.Written > 4 * 8 * 1024 * 1024, $"wrote {sink.Written} bytes");
        Assert.True(allocated < 8 * 1024 * 1024, $"saving 32 MiB of tensors allocated {allocated} managed bytes");
    }

    [Fact]
    public void FilteredLoadReadsOnlyTheIncludedTensors()
    {
        using var scope = NewDisposeScope();
        var stream = new MemoryStream();
        SafeTensors.Save(stream, [KeyValuePair.Create("ema.w", full(1000, 2f)), KeyValuePair.Create("model.w", full(1_000_000, 1f))]);
        stream.Position = 0;
        Assert.Equal(["ema.w", "model.w"], SafeTensors.ReadNames(stream, "state"));
        Assert.Equal(0, stream.Position);

        using var reading = new ReadCountingStream(stream);
        var loaded = SafeTensors.Load(reading, "state", name => name.StartsWith("ema.", StringComparison.Ordinal));
        Assert.Equal(["ema.w"], loaded.Keys);
        Assert.True(loaded["ema.w"].equal(full(1000, 2f)).all().item<bool>());
        Assert.True(reading.BytesRead < 10_000, $"read {reading.BytesRead} bytes of a {stream.Length}-byte file for 4000 bytes of tensor");
    }

    private sealed class ReadCountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }
        public override bool CanRead => true;
        public override bool CanSeek => true;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => Count(inner.Read(buffer, offset, count));
        public override int Read(Span<byte> buffer) => Count(inner.Read(buffer));
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        private int Count(int read)
        {
            BytesRead += read;
            return read;
        }
    }

    private sealed class CountingStream : Stream
    {
        public long Written { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Written += count;
        public override void Write(ReadOnlySpan<byte> buffer) => Written += buffer.Length;
    }

    [Fact]
    public void TruncatedFileGivesAClearError()
    {
        var path = Path.Combine(Path.GetTempPath(), $"rae-st-{Guid.NewGuid():N}.safetensors");
        try
        {
            File.WriteAllBytes(path, new byte[] { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 2 });
            var error = Assert.Throws<CheckpointFormatException>(() => SafeTensors.Load(path));
            Assert.Contains("header length", error.Message);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
