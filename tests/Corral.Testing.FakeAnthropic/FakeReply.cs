using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Corral.Testing.FakeAnthropic;

/// <summary>
/// What the fake answers to one <c>POST /v1/messages</c>: an assistant message made of content blocks
/// (streamed as SSE when the request has <c>"stream": true</c>, plain JSON otherwise), or an HTTP error.
/// Build one with the static helpers and adjust it with <c>with { … }</c>.
/// </summary>
/// <example>
/// <code>
/// FakeReply.Text("Hello.");
/// FakeReply.Bash("echo hi > out.txt").WithLeadingText("Writing the file.");
/// FakeReply.Mcp("fake", "echo", new { text = "ping" });
/// FakeReply.SlowText(chunks: 200, delay: TimeSpan.FromMilliseconds(100));   // ~20 s of text deltas
/// FakeReply.Hang();                                                         // streams the start, then waits
/// FakeReply.Overloaded();                                                   // HTTP 529
/// </code>
/// </example>
public sealed record FakeReply
{
    /// <summary>The assistant content blocks, in order.</summary>
    public IReadOnlyList<FakeBlock> Content { get; init; } = [];

    /// <summary>The <c>stop_reason</c>; <c>null</c> means <c>tool_use</c> when a block is a tool use, else <c>end_turn</c>.</summary>
    public string? StopReason { get; init; }

    /// <summary>Reported <c>usage.input_tokens</c>.</summary>
    public int InputTokens { get; init; } = 10;

    /// <summary>Reported <c>usage.output_tokens</c>.</summary>
    public int OutputTokens { get; init; } = 5;

    /// <summary>The <c>model</c> to report; <c>null</c> echoes the request's model.</summary>
    public string? Model { get; init; }

    /// <summary>Wait this long before sending the response headers (a slow first byte).</summary>
    public TimeSpan DelayBeforeResponse { get; init; }

    /// <summary>Wait this long between consecutive SSE delta events (streaming only).</summary>
    public TimeSpan ChunkDelay { get; init; }

    /// <summary>
    /// When set, the stream pauses right after the first content delta (streaming) or before the body (JSON)
    /// until this task completes. A task that never completes makes the reply hang until the client disconnects
    /// or the server is disposed. See <see cref="Hang"/>.
    /// </summary>
    public Task? Gate { get; init; }

    /// <summary>When set, the reply is this HTTP error instead of a message.</summary>
    public FakeError? HttpError { get; init; }

    /// <summary>When set (streaming only), the stream sends <c>message_start</c> and then this SSE <c>error</c> event, and ends.</summary>
    public FakeError? StreamError { get; init; }

    /// <summary>Extra response headers.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; init; } = new Dictionary<string, string>();

    /// <summary>The ids of the tool-use blocks, in order (handy to find the matching <c>tool_result</c>).</summary>
    public IReadOnlyList<string> ToolUseIds => Content.OfType<FakeBlock.ToolUse>().Select(t => t.Id).ToArray();

    /// <summary>The stop reason actually sent.</summary>
    public string EffectiveStopReason => StopReason ?? (Content.Any(b => b is FakeBlock.ToolUse) ? "tool_use" : "end_turn");

    /// <summary>A plain text answer, streamed as <paramref name="chunks"/> text deltas.</summary>
    public static FakeReply Text(string text, int chunks = 1) => new() { Content = [new FakeBlock.Text(text, chunks)] };

    /// <summary>A reply made of these blocks.</summary>
    public static FakeReply Blocks(params FakeBlock[] blocks) => new() { Content = blocks };

    /// <summary>
    /// One tool call. <paramref name="input"/> is a <see cref="JsonNode"/>, a JSON string, or any object
    /// (serialized with System.Text.Json, e.g. an anonymous type). The id is generated unless given.
    /// </summary>
    public static FakeReply ToolUse(string name, object? input, string? id = null) =>
        new() { Content = [FakeBlock.ToolCall(name, input, id)] };

    /// <summary>A call of Claude Code's <c>Bash</c> tool.</summary>
    public static FakeReply Bash(string command, string? description = null, string? id = null) =>
        new() { Content = [FakeBlock.Bash(command, description, id)] };

    /// <summary>A call of the MCP tool <c>mcp__<paramref name="server"/>__<paramref name="tool"/></c>.</summary>
    public static FakeReply Mcp(string server, string tool, object? input, string? id = null) =>
        ToolUse(McpToolName(server, tool), input, id);

    /// <summary>
    /// Text streamed as <paramref name="chunks"/> deltas (<c>"tick 0 "</c>, <c>"tick 1 "</c>, …) with
    /// <paramref name="delay"/> between them: a long reply that a cancel can interrupt mid-stream.
    /// </summary>
    public static FakeReply SlowText(int chunks, TimeSpan delay, string prefix = "tick") => new()
    {
        Content = [new FakeBlock.Text(string.Concat(Enumerable.Range(0, chunks).Select(i => $"{prefix} {i} ")), chunks)],
        ChunkDelay = delay,
    };

    /// <summary>
    /// Sends <c>message_start</c>, a text block start and one delta, then waits until the client disconnects
    /// (e.g. the CLI is interrupted) or the server is disposed; pass <paramref name="release"/> to let it finish.
    /// </summary>
    public static FakeReply Hang(Task? release = null, string text = "thinking about it") => new()
    {
        Content = [new FakeBlock.Text(text, 2)],
        Gate = release ?? new TaskCompletionSource().Task,
    };

    /// <summary>An HTTP error, e.g. <c>Error(529, "overloaded_error", "Overloaded")</c>.</summary>
    public static FakeReply Error(int status, string type, string message) =>
        new() { HttpError = new FakeError(status, type, message) };

    /// <summary>HTTP 529 <c>overloaded_error</c> (the CLI retries it; set <c>CLAUDE_CODE_MAX_RETRIES</c> to bound that).</summary>
    public static FakeReply Overloaded() => Error(529, "overloaded_error", "Overloaded");

    /// <summary>HTTP 429 <c>rate_limit_error</c>.</summary>
    public static FakeReply RateLimited() => Error(429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit");

    /// <summary>HTTP 401 <c>authentication_error</c>.</summary>
    public static FakeReply Unauthorized() => Error(401, "authentication_error", "invalid x-api-key");

    /// <summary>HTTP 400 <c>invalid_request_error</c>.</summary>
    public static FakeReply InvalidRequest(string message) => Error(400, "invalid_request_error", message);

    /// <summary>HTTP 200 and <c>message_start</c>, then an SSE <c>error</c> event (an overloaded stream by default).</summary>
    public static FakeReply ErrorMidStream(string type = "overloaded_error", string message = "Overloaded") =>
        new() { StreamError = new FakeError(200, type, message) };

    /// <summary>The same reply with a text block in front (as the model often says something before a tool call).</summary>
    public FakeReply WithLeadingText(string text) => this with { Content = [new FakeBlock.Text(text), .. Content] };

    /// <summary>The tool name Claude Code gives an MCP tool: <c>mcp__server__tool</c>.</summary>
    public static string McpToolName(string server, string tool) => $"mcp__{server}__{tool}";

    internal static string NewToolUseId() => "toolu_fake_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(10));
}

/// <summary>An HTTP/SSE error answer: <c>{"type":"error","error":{"type":…,"message":…}}</c>.</summary>
/// <param name="Status">HTTP status (ignored for a mid-stream error, which is sent on a 200 stream).</param>
/// <param name="Type">The error type, e.g. <c>overloaded_error</c>, <c>rate_limit_error</c>, <c>api_error</c>.</param>
/// <param name="Message">The error message.</param>
public sealed record FakeError(int Status, string Type, string Message);

/// <summary>One assistant content block of a <see cref="FakeReply"/>.</summary>
public abstract record FakeBlock
{
    private protected FakeBlock() { }

    /// <summary>A text block, streamed as <paramref name="Chunks"/> roughly equal <c>text_delta</c>s.</summary>
    public sealed record Text(string Value, int Chunks = 1) : FakeBlock;

    /// <summary>A <c>tool_use</c> block; its input is streamed as <paramref name="JsonChunks"/> <c>input_json_delta</c>s.</summary>
    public sealed record ToolUse(string Id, string Name, JsonNode Input, int JsonChunks = 2) : FakeBlock;

    /// <summary>A tool call; see <see cref="FakeReply.ToolUse"/> for what <paramref name="input"/> may be.</summary>
    public static ToolUse ToolCall(string name, object? input, string? id = null) =>
        new(id ?? FakeReply.NewToolUseId(), name, ToNode(input));

    /// <summary>A call of Claude Code's <c>Bash</c> tool.</summary>
    public static ToolUse Bash(string command, string? description = null, string? id = null)
    {
        var input = new JsonObject { ["command"] = command };
        if (description is not null)
            input["description"] = description;
        return new ToolUse(id ?? FakeReply.NewToolUseId(), "Bash", input);
    }

    internal static JsonNode ToNode(object? input) => input switch
    {
        null => new JsonObject(),
        JsonNode node => node.DeepClone(),
        string json => JsonNode.Parse(json) ?? new JsonObject(),
        JsonElement element => JsonNode.Parse(element.GetRawText()) ?? new JsonObject(),
        _ => JsonSerializer.SerializeToNode(input) ?? new JsonObject(),
    };
}
