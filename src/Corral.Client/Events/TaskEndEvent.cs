namespace Corral.Client.Events;

/// <summary><c>task.end</c>: always the last event; the stream ends after it.</summary>
/// <param name="Status">The final status.</param>
/// <param name="Error">Why it did not succeed.</param>
public sealed record TaskEndEvent(CorralTaskStatus Status, TaskError? Error) : CorralEvent;
