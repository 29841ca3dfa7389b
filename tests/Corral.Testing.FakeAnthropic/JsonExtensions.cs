using System.Text.Json.Nodes;

namespace Corral.Testing.FakeAnthropic;

internal static class JsonExtensions
{
    /// <summary>The node's string value, or <c>null</c> when it is missing or not a string.</summary>
    public static string? AsString(this JsonNode? node) =>
        node is JsonValue value && value.TryGetValue<string>(out var s) ? s : null;
}
