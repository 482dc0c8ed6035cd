using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace RAE.Silo.Web;

/// <summary>
/// JSON of the /api endpoints: camelCase properties and enums by name ("Running", "Training"), as `rae ... --json`
/// prints them, so a reader needs no table of enum numbers. Text is escaped as ASP.NET's own JSON is (quotes and
/// control characters only, so messages stay readable): every response is application/json with nosniff, never HTML.
/// </summary>
public static class WebJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };
}
