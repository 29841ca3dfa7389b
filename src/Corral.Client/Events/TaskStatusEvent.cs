namespace Corral.Client.Events;

/// <summary><c>task.status</c>: the task moved to <paramref name="Status"/>.</summary>
/// <param name="Status">The new status.</param>
/// <param name="At">When.</param>
public sealed record TaskStatusEvent(CorralTaskStatus Status, DateTimeOffset? At) : CorralEvent;
