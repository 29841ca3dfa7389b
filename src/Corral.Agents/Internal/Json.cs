using System.Text;
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

    /// <summary>
    /// How deep a value taken from agent output is nested at most in records and events (which sit in envelopes of
    /// their own, within the 64 levels JSON is read and written with). The output keeps the line whole.
    /// </summary>
    public const int MaxNodeDepth = 32;

    /// <summary>The element as a node (<c>null</c> when missing); objects and arrays nested past <see cref="MaxNodeDepth"/> become <c>null</c>.</summary>
    public static JsonNode? Node(this JsonElement e) => Node(e, MaxNodeDepth);

    private static JsonNode? Node(JsonElement e, int levels)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Undefined or JsonValueKind.Null:
                return null;
            case JsonValueKind.Object or JsonValueKind.Array when levels == 0:
                return null;
            case JsonValueKind.Object:
                var o = new JsonObject();
                foreach (var p in e.EnumerateObject())
                    o[p.Name] = Node(p.Value, levels - 1); // a repeated name: the last wins, as the parser's would
                return o;
            case JsonValueKind.Array:
                var a = new JsonArray();
                foreach (var v in e.EnumerateArray())
                    a.Add(Node(v, levels - 1));
                return a;
            default:
                return JsonValue.Create(e.Clone());
        }
    }

    /// <summary>Parses a line that looks like a JSON object (UTF-8 bytes, surrounding blanks allowed); <c>null</c> for anything else.</summary>
    public static JsonDocument? TryParseObject(ReadOnlySpan<byte> line)
    {
        var span = line.Trim(" \t\r"u8);
        if (span.Length < 2 || span[0] != '{' || span[^1] != '}')
            return null;
        try
        {
            var reader = new Utf8JsonReader(span, new JsonReaderOptions { MaxDepth = 256 });
            var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && reader.BytesConsumed == span.Length)
                return doc;
            doc.Dispose();
        }
        catch (JsonException)
        {
        }

        return null;
    }

    /// <summary>Parses a line of text that looks like a JSON object; <c>null</c> for anything else.</summary>
    public static JsonDocument? TryParseObject(string line) => TryParseObject(Encoding.UTF8.GetBytes(line));

    /// <summary>A line's bytes as text (invalid UTF-8 becomes U+FFFD), at most <paramref name="max"/> characters with an ellipsis.</summary>
    public static string Decode(ReadOnlySpan<byte> line, int max = int.MaxValue)
    {
        if (line.Length > 0 && line[^1] == '\r')
            line = line[..^1];
        // A UTF-8 character is at most 4 bytes: decoding 4 × max bytes is always enough for max characters.
        bool cut = max < int.MaxValue / 4 && line.Length > 4 * max;
        string text = Encoding.UTF8.GetString(cut ? line[..(4 * max)] : line);
        return cut || text.Length > max ? Truncate(text, max) : text;
    }

    public static string Truncate(string text, int max) => text.Length <= max ? text : string.Concat(text.AsSpan(0, max), "…");
}
