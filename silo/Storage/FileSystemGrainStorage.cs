using System.Security.Cryptography;
using System.Text;
using Orleans.Serialization;
using Orleans.Storage;

namespace RAE.Silo.Storage;

/// <summary>
/// Grain state as one file per grain under a folder. Writes go to a temp file that is renamed over the old one, so a
/// crash never leaves a half-written state. The ETag is a version counter kept in the file; a write whose ETag does not
/// match the file's is rejected with <see cref="InconsistentStateException"/>, like the other Orleans providers.
/// Several silos on one machine may share the folder (embedded mode, tests): a per-file lock file serialises them.
/// </summary>
public sealed class FileSystemGrainStorage(string root, Serializer serializer) : IGrainStorage
{
    private static readonly byte[] Magic = "RAEGS1"u8.ToArray();

    public async Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = PathFor(stateName, grainId);
        if (!File.Exists(path))
        {
            grainState.State = Activator.CreateInstance<T>();
            grainState.ETag = null;
            grainState.RecordExists = false;
            return;
        }
        var (version, payload) = Decode(path, await File.ReadAllBytesAsync(path));
        grainState.State = serializer.Deserialize<T>(payload);
        grainState.ETag = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public async Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = PathFor(stateName, grainId);
        using var fileLock = await AcquireLockAsync(path);
        var current = File.Exists(path) ? Decode(path, await File.ReadAllBytesAsync(path)).Version : (long?)null;
        CheckETag(path, current, grainState.ETag);
        var next = (current ?? 0) + 1;
        var payload = serializer.SerializeToArray(grainState.State);
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        await using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
        {
            await stream.WriteAsync(Magic);
            await stream.WriteAsync(BitConverter.GetBytes(next));
            await stream.WriteAsync(SHA256.HashData(payload));
            await stream.WriteAsync(payload);
            await stream.FlushAsync();
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        grainState.ETag = next.ToString(System.Globalization.CultureInfo.InvariantCulture);
        grainState.RecordExists = true;
    }

    public async Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var path = PathFor(stateName, grainId);
        using var fileLock = await AcquireLockAsync(path);
        var current = File.Exists(path) ? Decode(path, await File.ReadAllBytesAsync(path)).Version : (long?)null;
        CheckETag(path, current, grainState.ETag);
        File.Delete(path);
        grainState.ETag = null;
        grainState.RecordExists = false;
        grainState.State = Activator.CreateInstance<T>();
    }

    private static void CheckETag(string path, long? current, string? expected)
    {
        var currentText = current?.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (!string.Equals(currentText, expected, StringComparison.Ordinal))
            throw new InconsistentStateException($"Grain state file '{path}' has version '{currentText ?? "none"}' but the write expected '{expected ?? "none"}'.", currentText ?? "none", expected ?? "none");
    }

    private static (long Version, byte[] Payload) Decode(string path, byte[] bytes)
    {
        var headerLength = Magic.Length + sizeof(long) + 32;
        if (bytes.Length < headerLength || !bytes.AsSpan(0, Magic.Length).SequenceEqual(Magic))
            throw new InvalidDataException($"Grain state file '{path}' is not an RAE grain state file.");
        var version = BitConverter.ToInt64(bytes, Magic.Length);
        var checksum = bytes.AsSpan(Magic.Length + sizeof(long), 32);
        var payload = bytes[headerLength..];
        if (!SHA256.HashData(payload).AsSpan().SequenceEqual(checksum))
            throw new InvalidDataException($"Grain state file '{path}' fails its checksum; it is corrupt.");
        return (version, payload);
    }

    private string PathFor(string stateName, GrainId grainId)
    {
        var type = Sanitize(grainId.Type.ToString() ?? "grain");
        var key = grainId.Key.ToString() ?? "";
        // The key may hold any character; a short hash keeps file names legal and distinct.
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(stateName + "\n" + key)))[..16];
        var folder = Path.Combine(root, type);
        Directory.CreateDirectory(folder);
        return Path.Combine(folder, $"{Sanitize(stateName)}-{Sanitize(key)[..Math.Min(40, Sanitize(key).Length)]}-{hash}.state");
    }

    private static string Sanitize(string text)
    {
        var builder = new StringBuilder(text.Length);
        foreach (var c in text) builder.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        return builder.ToString();
    }

    private static async Task<IDisposable> AcquireLockAsync(string path)
    {
        var lockPath = path + ".lock";
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException) when (attempt < 200)
            {
                await Task.Delay(10);
            }
        }
    }
}
