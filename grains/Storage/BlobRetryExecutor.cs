using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;

namespace RAE.Grains.Storage;

internal enum FailureKind
{
    /// <summary>Not a storage failure (bad argument, caller cancellation, typed store exception): rethrown as is.</summary>
    PassThrough,

    /// <summary>Worth another attempt (network error, timeout, throttling, server error, transient I/O error).</summary>
    Transient,

    /// <summary>A storage failure that retrying will not cure (authentication, permissions): reported at once.</summary>
    Permanent,
}

/// <summary>Runs one store operation with the bounded retry policy. Transient failures are retried, then surface as
/// <see cref="BlobStoreUnavailableException"/> with the reason; failures of the caller's content stream propagate
/// unchanged and are never retried.</summary>
internal sealed class BlobRetryExecutor(
    BlobStoreRetryOptions options,
    Func<Exception, CancellationToken, FailureKind> classify,
    string location,
    ILogger logger)
{
    public async Task<T> ExecuteAsync<T>(string operation, string? path, Func<CancellationToken, Task<T>> action,
        CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                return await action(cancellationToken).ConfigureAwait(false);
            }
            catch (SourceStreamException source)
            {
                ExceptionDispatchInfo.Capture(source.InnerException!).Throw();
                throw;
            }
            catch (Exception ex) when (ex is not BlobStoreException && classify(ex, cancellationToken) != FailureKind.PassThrough)
            {
                var transient = classify(ex, cancellationToken) == FailureKind.Transient;
                var where = $"{operation}{(path is null ? "" : $" '{path}'")} on {location}";
                if (!transient)
                    throw new BlobStoreUnavailableException(path, $"{where} failed: {Reason(ex)}", attempt, ex);
                if (attempt >= options.MaxAttempts)
                {
                    throw new BlobStoreUnavailableException(path,
                        $"{where} failed after {attempt} attempt(s): {Reason(ex)}", attempt, ex);
                }

                var delay = options.BackoffBefore(attempt + 1);
                logger.LogWarning(ex, "{Operation} {Path} on {Location} failed (attempt {Attempt}/{MaxAttempts}); retrying in {Delay}",
                    operation, path, location, attempt, options.MaxAttempts, delay);
                await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public Task ExecuteAsync(string operation, string? path, Func<CancellationToken, Task> action, CancellationToken cancellationToken) =>
        ExecuteAsync<bool>(operation, path, async ct => { await action(ct).ConfigureAwait(false); return true; }, cancellationToken);

    /// <summary>The chain of messages, which names the real cause (e.g. "Connection refused (127.0.0.1:10000)").</summary>
    internal static string Reason(Exception ex)
    {
        var messages = new List<string>();
        for (var current = ex; current is not null; current = current.InnerException)
        {
            var firstLine = current.Message.Split('\n', 2)[0].Trim();
            if (firstLine.Length > 0 && !messages.Contains(firstLine)) messages.Add(firstLine);
        }

        return $"{ex.GetType().Name}: {string.Join(" <- ", messages)}";
    }
}

/// <summary>Marks a failure of the caller's content stream, so that it is neither retried nor blamed on storage.</summary>
internal sealed class SourceStreamException(Exception inner) : Exception("the content stream failed", inner);

/// <summary>Forward-only view of the caller's content that tags its exceptions as <see cref="SourceStreamException"/>.</summary>
internal sealed class SourceReadStream(Stream source) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        try
        {
            return source.Read(buffer, offset, count);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new SourceStreamException(ex);
        }
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        try
        {
            return await source.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            throw new SourceStreamException(ex);
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
