namespace RAE.Client.Commands;

/// <summary>A command line that parsed but asks for something impossible; `rae` prints it and exits 2.</summary>
public sealed class UsageException(string message) : Exception(message);
