namespace Corral.Client;

/// <summary>409 Conflict: the request cannot be done in the task's or session's state: <c>session_busy</c>, <c>idempotency_conflict</c>, <c>task_active</c>.</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralConflictException(CorralProblem problem) : CorralApiException(problem);
