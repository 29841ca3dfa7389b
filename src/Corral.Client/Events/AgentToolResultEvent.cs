namespace Corral.Client.Events;

/// <summary><c>agent.tool_result</c>: a tool returned (the content is cut short; the transcript has it whole).</summary>
/// <param name="ToolUseId">The call it answers.</param>
/// <param name="IsError">Whether the tool failed.</param>
/// <param name="ContentPreview">The start of the content.</param>
public sealed record AgentToolResultEvent(string? ToolUseId, bool IsError, string? ContentPreview) : CorralEvent;
