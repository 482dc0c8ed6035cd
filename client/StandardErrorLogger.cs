using Microsoft.Extensions.Logging;

namespace RAE.Client;

/// <summary>Writes Information and above as "rae: message" lines on stderr, leaving stdout to the command's output.</summary>
internal sealed class StandardErrorLogger(TextWriter error) : ILogger
{
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        if (!IsEnabled(logLevel)) return;
        error.WriteLine($"rae: {formatter(state, exception)}");
    }
}
