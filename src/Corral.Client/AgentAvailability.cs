namespace Corral.Client;

/// <summary>Whether one agent can take tasks on the server.</summary>
/// <param name="Agent">Its name (<see cref="CorralAgents"/>).</param>
/// <param name="Available">Whether it can.</param>
/// <param name="Reason">Why not (its CLI was not found, it is turned off).</param>
public sealed record AgentAvailability(string Agent, bool Available, string? Reason);
