namespace RAE.Models;

public static class TorchInfo
{
    public static string Describe() => $"TorchSharp {typeof(TorchSharp.torch).Assembly.GetName().Version}";
}
