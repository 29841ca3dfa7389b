using System.Text.Json;

namespace Corral.Client.Events;

/// <summary><c>agent.tool_use</c>: the agent called a tool.</summary>
/// <param name="ToolUseId">The call's id (its result names it).</param>
/// <param name="ToolName">The tool.</param>
/// <param name="Input">The tool's input as the agent wrote it.</param>
public sealed record AgentToolUseEvent(string? ToolUseId, string? ToolName, JsonElement Input) : CorralEvent;
