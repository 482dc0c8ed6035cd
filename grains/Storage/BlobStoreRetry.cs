using System.Runtime.ExceptionServices;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

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

/// <summary>Runs one store operation through a Polly retry pipeline built from <see cref="BlobStoreRetryOptions"/>.
/// Transient failures are retried, then surface as <see cref="BlobStoreUnavailableException"/> with the reason;
/// permanent ones surface at once; failures of the caller's content stream propagate unchanged and are never retried.</summary>
internal sealed class BlobStoreRetry
{
    private readonly Func<Exception, CancellationToken, FailureKind> _classify;
    private readonly string _location;
    private readonly ResiliencePipeline _pipeline;

    public BlobStoreRetry(BlobStoreRetryOptions options, Func<Exception, CancellationToken, FailureKind> classify, string location, ILogger logger)
    {
        _classify = classify;
        _location = location;
        // Polly counts retries, the options count attempts; one attempt means no retry strategy at all.
        _pipeline = options.MaxAttempts <= 1 ? ResiliencePipeline.Empty : new ResiliencePipelineBuilder().AddRetry(new RetryStrategyOptions
        {
            MaxRetryAttempts = options.MaxAttempts - 1,
            ShouldHandle = arguments => ValueTask.FromResult(
                arguments.Outcome.Exception is { } failure && IsTransient(failure, arguments.Context.CancellationToken)),
            // The documented schedule of BlobStoreRetryOptions (Polly's retry AttemptNumber is 0 before the second attempt).
            DelayGenerator = arguments => ValueTask.FromResult<TimeSpan?>(options.BackoffBefore(arguments.AttemptNumber + 2)),
            OnRetry = arguments =>
            {
                logger.LogWarning(arguments.Outcome.Exception, "{Operation} failed (attempt {Attempt}/{MaxAttempts}); retrying in {Delay}",
                    arguments.Context.OperationKey, arguments.AttemptNumber + 1, options.MaxAttempts, arguments.RetryDelay);
                return ValueTask.CompletedTask;
            },
        }).Build();
    }

    public async Task<T> ExecuteAsync<T>(string operation, string? path, Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        var where = $"{operation}{(path is null ? "" : $" '{path}'")} on {_location}";
        var context = ResilienceContextPool.Shared.Get(where, cancellationToken);
        var attempts = 0;
        try
        {
            return await _pipeline.ExecuteAsync(async ctx =>
            {
                ctx.CancellationToken.ThrowIfCancellationRequested();
                attempts++;
                return await action(ctx.CancellationToken).ConfigureAwait(false);
            }, context).ConfigureAwait(false);
        }
        catch (SourceStreamException source)
        {
            ExceptionDispatchInfo.Capture(source.InnerException!).Throw();
            throw;
        }
        catch (Exception ex) when (ex is not BlobStoreException && _classify(ex, cancellationToken) != FailureKind.PassThrough)
        {
            if (_classify(ex, cancellationToken) == FailureKind.Permanent)
                throw new BlobStoreUnavailableException(path, $"{where} failed: {Reason(ex)}", attempts, ex);
            throw new BlobStoreUnavailableException(path, $"{where} failed after {attempts} attempt(s): {Reason(ex)}", attempts, ex);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
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

    private bool IsTransient(Exception failure, CancellationToken cancellationToken) =>
        failure is not (BlobStoreException or SourceStreamException) && _classify(failure, cancellationToken) == FailureKind.Transient;
}
