namespace RAE.Models.Runtime;

/// <summary>
/// An environment variable that steers the native runtime (e.g. <c>RAE_BF16_GEMM</c>) holds a value it does not accept.
/// Entry points print the message alone and exit with the usage-error code: it is the operator's setting, not a bug.
/// </summary>
public sealed class RuntimeSettingException(string variable, string message) : ArgumentException(message)
{
    public string Variable { get; } = variable;
}
