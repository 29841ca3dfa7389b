using System.Globalization;
using System.Text.Json;
using Corral.Client.Events;

namespace Corral.Client.Internal;

/// <summary>Typed events from frames: the event's name picks the type; fields the type lacks stay in <see cref="CorralEvent.Data"/>.</summary>
internal static class EventParser
{
    public static CorralEvent Parse(SseFrame frame)
    {
        JsonElement data;
        try
        {
            data = frame.Data.Length == 0 ? default : JsonSerializer.Deserialize<JsonElement>(frame.Data);
        }
        catch (JsonException)
        {
            data = default;
        }

        long? id = long.TryParse(frame.Id, NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : null;
        var typed = data.ValueKind == JsonValueKind.Object ? Typed(frame.Name, data) : null;
        return (typed ?? new UnknownEvent()) with { Id = id, Name = frame.Name, Data = data };
    }

    private static CorralEvent? Typed(string name, JsonElement d) => name switch
    {
        "task.status" => new TaskStatusEvent(Status(d), Date(d, "at")),
        "task.end" => new TaskEndEvent(Status(d), d.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.Object
            ? e.Deserialize<TaskError>(ClientJson.Options)
            : null),
        "task.result" => new TaskResultEvent(ClientJson.ReadTask(d)),
        "output" => new OutputEvent(Text(d, "stream") == "stderr" ? OutputStreamKind.Stderr : OutputStreamKind.Stdout,
            Text(d, "text") ?? "", Bool(d, "fragment"), Text(d, "base64")),
        "agent.text" => new AgentTextEvent(Text(d, "messageId"), Text(d, "text") ?? ""),
        "agent.stderr" => new AgentStderrEvent(Text(d, "text") ?? ""),
        "agent.tool_use" => new AgentToolUseEvent(Text(d, "toolUseId"), Text(d, "name"), Element(d, "input")),
        "agent.tool_result" => new AgentToolResultEvent(Text(d, "toolUseId"), Bool(d, "isError"), Text(d, "contentPreview")),
        "agent.notice" => new AgentNoticeEvent(Text(d, "kind") ?? "", Text(d, "message"), Element(d, "data")),
        "agent.init" => new AgentInitEvent(Text(d, "sessionId"), Text(d, "model"), Text(d, "cwd"),
            Array(d, "tools").Where(t => t.ValueKind == JsonValueKind.String).Select(t => t.GetString()!).ToList(),
            Array(d, "mcp").Where(m => m.ValueKind == JsonValueKind.Object).Select(m => new McpServerState(Text(m, "name") ?? "", Text(m, "status"))).ToList(),
            Text(d, "version")),
        _ => null,
    };

    private static CorralTaskStatus Status(JsonElement d) =>
        d.TryGetProperty("status", out var s) ? s.Deserialize<CorralTaskStatus>(ClientJson.Options) : CorralTaskStatus.Unknown;

    private static string? Text(JsonElement d, string name) =>
        d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static bool Bool(JsonElement d, string name) => d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    private static JsonElement Element(JsonElement d, string name) => d.TryGetProperty(name, out var v) ? v : default;

    private static DateTimeOffset? Date(JsonElement d, string name) =>
        d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.TryGetDateTimeOffset(out var at) ? at : null;

    private static IEnumerable<JsonElement> Array(JsonElement d, string name) =>
        d.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Array ? v.EnumerateArray() : [];
}
