using System.Text.Json;
using System.Text.Json.Nodes;

namespace Corral.Agents.Internal;

/// <summary>Small, forgiving accessors: agent output is not ours, so a missing or odd field is never an exception.</summary>
internal static class Json
{
    public static string? Str(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public static bool Bool(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    public static int? Int(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : null;

    public static long? Long(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out long i) ? i : null;

    public static double? Double(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;

    public static JsonElement Get(this JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) ? v : default;

    public static IEnumerable<JsonElement> Items(this JsonElement e) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray() : [];

    public static JsonNode? Node(this JsonElement e) =>
        e.ValueKind == JsonValueKind.Undefined ? null : JsonNode.Parse(e.GetRawText());

    /// <summary>Parses a line that looks like a JSON object; <c>null</c> for anything else.</summary>
    public static JsonDocument? TryParseObject(string line)
    {
        var span = line.AsSpan().Trim();
        if (span.Length < 2 || span[0] != '{' || span[^1] != '}')
            return null;
        try
        {
            var doc = JsonDocument.Parse(line, new JsonDocumentOptions { MaxDepth = 256 });
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
                return doc;
            doc.Dispose();
        }
        catch (JsonException)
        {
        }

        return null;
    }

    public static string Truncate(string text, int max) => text.Length <= max ? text : string.Concat(text.AsSpan(0, max), "…");
}
