using System.Text;
using System.Text.Json.Nodes;

namespace Corral.Testing.FakeAnthropic;

/// <summary>A <c>tool_result</c> block the client sent back.</summary>
/// <param name="ToolUseId">The <c>tool_use_id</c> it answers.</param>
/// <param name="Text">Its content as text (a string content, or the text blocks joined with newlines).</param>
/// <param name="IsError">Its <c>is_error</c> flag.</param>
public sealed record ToolResult(string ToolUseId, string Text, bool IsError);

/// <summary>
/// A read-only view of a <c>POST /v1/messages</c> body, with helpers for what tests usually look at:
/// the prompt, the tool results, how many assistant turns came before.
/// </summary>
/// <remarks>
/// Claude Code 2.1.330 puts <c>&lt;system-reminder&gt;</c> text blocks in front of the prompt in the first user
/// message and may insert <c>"role": "system"</c> entries into <c>messages</c>; the text helpers skip reminders.
/// </remarks>
public sealed class MessagesRequest
{
    internal MessagesRequest(RecordedRequest record, JsonObject json)
    {
        Record = record;
        Json = json;
        Messages = json["messages"] is JsonArray array ? array.OfType<JsonObject>().ToArray() : [];
    }

    /// <summary>The HTTP request it came in.</summary>
    public RecordedRequest Record { get; }

    /// <summary>The whole body.</summary>
    public JsonObject Json { get; }

    /// <summary>The <c>model</c> field.</summary>
    public string? Model => Json["model"].AsString();

    /// <summary>The <c>stream</c> field.</summary>
    public bool Stream => Json["stream"] is JsonValue v && v.TryGetValue<bool>(out var b) && b;

    /// <summary>The <c>max_tokens</c> field.</summary>
    public int? MaxTokens => Json["max_tokens"] is JsonValue v && v.TryGetValue<int>(out var n) ? n : null;

    /// <summary>The entries of <c>messages</c>.</summary>
    public IReadOnlyList<JsonObject> Messages { get; }

    /// <summary>The names in <c>tools</c> (Claude Code defers some tools, e.g. MCP tools, and lists them in text instead).</summary>
    public IReadOnlyList<string> ToolNames =>
        Json["tools"] is JsonArray tools
            ? tools.OfType<JsonObject>().Select(t => t["name"].AsString()).OfType<string>().ToArray()
            : [];

    /// <summary>How many assistant messages precede this request: 0 for the first call of a turn, 1 after one tool round…</summary>
    public int AssistantTurnCount => Messages.Count(m => Role(m) == "assistant");

    /// <summary>The text of every user message (reminders skipped), in order.</summary>
    public IReadOnlyList<string> UserTexts =>
        Messages.Where(m => Role(m) == "user").Select(TextOf).Where(t => t.Length > 0).ToArray();

    /// <summary>The text of the last user message that has text (the prompt, on the first call), or <c>null</c>.</summary>
    public string? LastUserText => UserTexts.LastOrDefault();

    /// <summary>Every <c>tool_result</c> block in the conversation, in order.</summary>
    public IReadOnlyList<ToolResult> ToolResults =>
        Messages.Where(m => Role(m) == "user").SelectMany(ToolResultsOf).ToArray();

    /// <summary>The <c>tool_result</c> blocks of the last message (what the client just ran).</summary>
    public IReadOnlyList<ToolResult> LatestToolResults =>
        Messages.LastOrDefault(m => Role(m) == "user") is { } last ? ToolResultsOf(last).ToArray() : [];

    /// <summary>The result for a tool-use id, or <c>null</c>.</summary>
    public ToolResult? ToolResultFor(string toolUseId) => ToolResults.LastOrDefault(r => r.ToolUseId == toolUseId);

    /// <summary>The <c>system</c> field as text (blocks joined with newlines).</summary>
    public string SystemText => Json["system"] switch
    {
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonArray blocks => string.Join("\n", blocks.OfType<JsonObject>().Select(b => b["text"].AsString()).OfType<string>()),
        _ => "",
    };

    private static string? Role(JsonObject message) => message["role"].AsString();

    private static string TextOf(JsonObject message)
    {
        switch (message["content"])
        {
            case JsonValue v when v.TryGetValue<string>(out var s):
                return s;
            case JsonArray blocks:
                var sb = new StringBuilder();
                foreach (var block in blocks.OfType<JsonObject>())
                {
                    if (block["type"].AsString() != "text" || block["text"].AsString() is not { } text)
                        continue;
                    if (text.TrimStart().StartsWith("<system-reminder>", StringComparison.Ordinal))
                        continue;
                    if (sb.Length > 0)
                        sb.Append('\n');
                    sb.Append(text);
                }
                return sb.ToString();
            default:
                return "";
        }
    }

    private static IEnumerable<ToolResult> ToolResultsOf(JsonObject message)
    {
        if (message["content"] is not JsonArray blocks)
            yield break;
        foreach (var block in blocks.OfType<JsonObject>())
        {
            if (block["type"].AsString() != "tool_result")
                continue;
            var id = block["tool_use_id"].AsString() ?? "";
            var isError = block["is_error"] is JsonValue e && e.TryGetValue<bool>(out var flag) && flag;
            var text = block["content"] switch
            {
                JsonValue v when v.TryGetValue<string>(out var s) => s,
                JsonArray parts => string.Join("\n", parts.OfType<JsonObject>()
                    .Where(p => p["type"].AsString() == "text")
                    .Select(p => p["text"].AsString()).OfType<string>()),
                _ => "",
            };
            yield return new ToolResult(id, text, isError);
        }
    }

    /// <inheritdoc />
    public override string ToString() => $"{Record} model={Model} stream={Stream} messages={Messages.Count}";
}
