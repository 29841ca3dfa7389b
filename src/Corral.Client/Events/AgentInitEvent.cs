namespace Corral.Client.Events;

/// <summary><c>agent.init</c>: the agent started its turn (Claude's <c>system/init</c>).</summary>
/// <param name="SessionId">The agent session.</param>
/// <param name="Model">The model.</param>
/// <param name="Cwd">The working directory.</param>
/// <param name="Tools">The tools the agent has.</param>
/// <param name="McpServers">Each MCP server and its state.</param>
/// <param name="Version">The agent CLI's version.</param>
public sealed record AgentInitEvent(string? SessionId, string? Model, string? Cwd, IReadOnlyList<string> Tools,
    IReadOnlyList<McpServerState> McpServers, string? Version) : CorralEvent;
