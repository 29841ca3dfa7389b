namespace Corral.Client;

/// <summary>Whether the server can take tasks now (<c>GET /readyz</c>), and with which agents.</summary>
/// <param name="IsReady">At least one agent can take tasks, and the server is not stopping nor out of disk.</param>
/// <param name="Detail">Why not, when not ready.</param>
/// <param name="Agents">Each agent's availability.</param>
/// <param name="RetryAfter">When not ready: how long the server suggests waiting.</param>
public sealed record CorralReadiness(bool IsReady, string? Detail, IReadOnlyList<AgentAvailability> Agents, TimeSpan? RetryAfter);
