namespace RAE.Grains.Checkpoints;

/// <summary>A temporary file for a checkpoint payload on its way to or from the blob store, deleted when closed.</summary>
public static class ScratchFile
{
    public static FileStream Create() =>
        new(Path.Combine(Path.GetTempPath(), $"rae-checkpoint-{Guid.NewGuid():N}.tmp"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None,
            bufferSize: 1 << 20, FileOptions.DeleteOnClose);
}
