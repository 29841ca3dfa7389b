using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Corral.Agents;

/// <summary>Something an agent reported while running. <see cref="EventName"/> is the server-sent event name.</summary>
public abstract record AgentEvent
{
    /// <summary>The event name on the wire, e.g. <c>agent.text</c>.</summary>
    [JsonIgnore]
    public abstract string EventName { get; }
}

/// <summary>One MCP server's state at start-up.</summary>
/// <param name="Name">The server's name.</param>
/// <param name="Status"><c>connected</c>, <c>failed</c>, <c>needs-auth</c>, <c>pending</c> or <c>disabled</c>.</param>
public sealed record McpServerStatus(string Name, string? Status);

/// <summary>The agent started its turn (Claude's <c>system/init</c>).</summary>
public sealed record AgentInit(string? SessionId, string? Model, string? Cwd, IReadOnlyList<string> Tools, IReadOnlyList<McpServerStatus> Mcp, string? Version) : AgentEvent
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string EventName => "agent.init";
}

/// <summary>A block of assistant text.</summary>
public sealed record AgentText(string? MessageId, string Text) : AgentEvent
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string EventName => "agent.text";
}

/// <summary>The agent called a tool.</summary>
public sealed record AgentToolUse(string? ToolUseId, string? Name, JsonNode? Input) : AgentEvent
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string EventName => "agent.tool_use";
}

/// <summary>A tool returned; the content is truncated (the transcript has it whole).</summary>
public sealed record AgentToolResult(string? ToolUseId, bool IsError, string ContentPreview) : AgentEvent
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string EventName => "agent.tool_result";
}

/// <summary>Anything else worth telling: retries, rate limits, background tasks, non-JSON lines, interrupts.</summary>
/// <param name="Kind">What kind of notice, e.g. <c>api_retry</c>, <c>rate_limit</c>, <c>non_json</c>.</param>
/// <param name="Message">A short human-readable text, when there is one.</param>
/// <param name="Data">The agent's own payload, when there is one.</param>
public sealed record AgentNotice(string Kind, string? Message = null, JsonNode? Data = null) : AgentEvent
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string EventName => "agent.notice";
}

/// <summary>A line the agent wrote to stderr.</summary>
public sealed record AgentStderr(string Text) : AgentEvent
{
    /// <inheritdoc />
    [JsonIgnore]
    public override string EventName => "agent.stderr";
}
