namespace Corral.Client.Events;

/// <summary><c>task.result</c>: the task's final record (just before <see cref="TaskEndEvent"/>).</summary>
/// <param name="Task">The record.</param>
public sealed record TaskResultEvent(CorralTask Task) : CorralEvent;
