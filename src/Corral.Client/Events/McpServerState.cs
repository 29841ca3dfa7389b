namespace Corral.Client.Events;

/// <summary>One MCP server's state when the agent started.</summary>
/// <param name="Name">The server's name.</param>
/// <param name="Status"><c>connected</c>, <c>failed</c>, <c>needs-auth</c>, <c>pending</c> or <c>disabled</c>.</param>
public sealed record McpServerState(string Name, string? Status);
