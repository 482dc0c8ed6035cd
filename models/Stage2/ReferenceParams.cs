using System.Globalization;
using System.Text.Json;
using EncoderDecoderPair = RAE.Configuration.EncoderDecoderPair;

namespace RAE.Models.Stage2;

/// <summary>Typed reads of a reference constructor-argument JSON object, with errors naming the model and the key.</summary>
internal sealed class ReferenceParams(JsonElement parameters, string model)
{
    public void RejectUnknown(params string[] known)
    {
        if (parameters.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{model} params must be a JSON object");
        var unknown = parameters.EnumerateObject().Select(p => p.Name).Where(n => !known.Contains(n)).ToList();
        if (unknown.Count > 0) throw new InvalidDataException($"{model} params: unknown key(s) {string.Join(", ", unknown)}");
    }

    public int Int(string key, int fallback) =>
        TryGet(key, out var value) ? (value.TryGetInt32(out var parsed) ? parsed : throw Bad(key, value, "an integer")) : fallback;

    public double Double(string key, double fallback) =>
        TryGet(key, out var value) ? (value.ValueKind == JsonValueKind.Number ? value.GetDouble() : throw Bad(key, value, "a number")) : fallback;

    public bool Bool(string key, bool fallback) =>
        TryGet(key, out var value) ? value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(key, value, "true or false"),
        } : fallback;

    public EncoderDecoderPair Pair(string key, EncoderDecoderPair fallback, bool allowSingle)
    {
        if (!TryGet(key, out var value)) return fallback;
        if (allowSingle && value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var single)) return EncoderDecoderPair.Both(single);
        if (value.ValueKind == JsonValueKind.Array && value.GetArrayLength() == 2
            && value[0].TryGetInt32(out var first) && value[1].TryGetInt32(out var second))
            return new EncoderDecoderPair(first, second);
        throw Bad(key, value, allowSingle ? "an integer or a pair [encoder, decoder]" : "a pair [encoder, decoder]");
    }

    private bool TryGet(string key, out JsonElement value) =>
        parameters.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

    private InvalidDataException Bad(string key, JsonElement value, string expected) =>
        new(string.Create(CultureInfo.InvariantCulture, $"{model} params: '{key}' must be {expected}, got {value.GetRawText()}"));
}
