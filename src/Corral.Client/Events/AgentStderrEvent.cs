namespace Corral.Client.Events;

/// <summary><c>agent.stderr</c>: a line a JSON-lines agent wrote to stderr.</summary>
/// <param name="Text">The line.</param>
public sealed record AgentStderrEvent(string Text) : CorralEvent;
