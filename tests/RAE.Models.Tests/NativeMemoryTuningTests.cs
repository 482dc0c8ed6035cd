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
}
