using RAE.Models.Runtime;

namespace RAE.Models.Tests;

public sealed class NativeMemoryTuningTests
{
    /// <summary>
    /// The suite's runtime set-up tuned glibc's allocator, so a large tensor allocated again after being freed reuses
    /// memory that is already mapped (or huge pages) instead of page-faulting every 4 KiB again: glibc's defaults fault
    /// in all 8,192 pages of a 32 MiB tensor on every allocation. Counts page faults, not time.
    /// </summary>
    [Fact]
    public void ALargeTensorAllocatedAgainDoesNotFaultInItsPagesAgain()
    {
        var result = NativeMemoryTuning.Apply();
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(NativeMemoryTuning.OptOutVariable) is "0")
        {
            Assert.False(result.Enabled, result.Description);
            return;
        }
        Assert.True(result.Enabled, result.Description);
        Assert.Same(result, NativeMemoryTuning.Apply());
        const long elements = 8L << 20;
        var pages = elements * sizeof(float) / Environment.SystemPageSize;
        var faults = new List<long>();
        for (var round = 0; round < 4; round++)
        {
            var before = NativeMemoryTuning.ThreadMinorFaults()!.Value;
            using (var tensor = TorchSharp.torch.ones(elements))
            using (var sum = tensor.sum())
                Assert.Equal(elements, sum.item<float>());
            faults.Add(NativeMemoryTuning.ThreadMinorFaults()!.Value - before);
        }
        // The first round may fault the block in; the later ones must not do it again.
        Assert.True(faults.Skip(1).Max() < pages / 4, $"minor faults per round [{string.Join(", ", faults)}] for a tensor of {pages} pages");
    }

    /// <summary>
    /// In a child process (no other test allocating beside it): 512 MiB of tensors freed stay resident under the tuning,
    /// and <see cref="NativeMemoryTuning.ReturnFreeMemory"/> gives at least 3/4 of them back.
    /// </summary>
    [Fact]
    public void FreedTensorMemoryGoesBackToTheKernelWhenAsked()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(NativeMemoryTuning.OptOutVariable) is "0") return;
        var result = System.Text.Json.JsonSerializer.Deserialize<FreeMemoryResult>(ProbeProgram.Run(new Dictionary<string, string>(), "--return-free-memory"))!;
        const long allocated = 512L << 20;
        Assert.True(result.Trimmed, $"malloc_trim released nothing: {result}");
        Assert.True(result.AfterFree - result.Before > allocated * 3 / 4, $"the tuned heap did not keep the freed tensors: {result}");
        Assert.True(result.AfterFree - result.AfterReturn > allocated * 3 / 4, $"less than 3/4 of 512 MiB went back: {result}");
    }

    public sealed record FreeMemoryResult(long Before, long AfterFree, long AfterReturn, bool Trimmed);

    internal static FreeMemoryResult AllocateFreeAndReturn()
    {
        NativeMemoryTuning.Apply();
        var before = NativeMemoryTuning.ResidentBytes()!.Value;
        // Eight 64 MiB tensors alive at once, each touched, then all freed.
        var tensors = Enumerable.Range(0, 8).Select(_ => TorchSharp.torch.ones(16L << 20)).ToList();
        foreach (var tensor in tensors) tensor.Dispose();
        var afterFree = NativeMemoryTuning.ResidentBytes()!.Value;
        var trimmed = NativeMemoryTuning.ReturnFreeMemory();
        return new FreeMemoryResult(before, afterFree, NativeMemoryTuning.ResidentBytes()!.Value, trimmed);
    }
}
