namespace Corral.Client.Events;

/// <summary><c>agent.text</c>: a block of assistant text.</summary>
/// <param name="MessageId">The message it belongs to.</param>
/// <param name="Text">The text.</param>
public sealed record AgentTextEvent(string? MessageId, string Text) : CorralEvent;
