using Corral.Agents;
using Corral.Processes;
using Corral.Server.Api;

namespace Corral.Server.Internal.Running;

/// <summary>Why the runtime stopped a task before the agent finished by itself.</summary>
internal enum StopReason
{
    Cancel,
    Timeout,
    Stall,
    Shutdown,
    StorageFull,

    /// <summary>This node lost its lease on the task (fleet mode): another node may decide its end, so its tree must go now.</summary>
    Fenced,
}

/// <summary>Something that went wrong on Corral's side of a run: the task could not be started, or its output not stored.</summary>
/// <param name="Code">The task's error code.</param>
/// <param name="Message">What went wrong.</param>
/// <param name="UidSpoiled">The task's uid could not be taken on (its keyrings locked by an earlier task of it, say): held back, or it would fail every task it serves.</param>
internal sealed record RunFailure(string Code, string Message, bool UidSpoiled = false);

/// <summary>Everything a run found out, for <see cref="TaskOutcome.Final"/>.</summary>
internal sealed record RunResult(AgentOutcome? Agent, ProcessOutcome? Process, StopReason? Stop, RunFailure? Failure, TaskOutput? Output, bool ResultBeforeStop = true);

/// <summary>The error codes of a task record.</summary>
internal static class ErrorCodes
{
    public const string AgentError = "agent_error";
    public const string Timeout = "timeout";
    public const string Stall = "stall";
    public const string Cancelled = "cancelled";
    public const string ResultLost = "result_lost";
    public const string SpawnFailed = "spawn_failed";
    public const string StorageFull = "storage_full";
    public const string MemoryLimit = "memory_limit";
    public const string PidsLimit = "pids_limit";
    public const string Interrupted = "interrupted";
    public const string Internal = "internal_error";
}

/// <summary>How a run ends as a task: pure functions of what the run found, tested without processes.</summary>
internal static class TaskOutcome
{
    /// <summary>The final status and error. A result that came in only after a timeout fired (<paramref name="resultBeforeStop"/> false) is too late.</summary>
    public static (TaskState Status, TaskError? Error) Decide(AgentOutcome? agent, StopReason? stop, RunFailure? failure, TimeSpan? timeout, TimeSpan? stall,
        ResourceUsage? resources = null, bool resultBeforeStop = true)
    {
        if (failure is not null)
            return (TaskState.Failed, new TaskError(failure.Code, failure.Message));
        if (stop == StopReason.StorageFull)
            return (TaskState.Failed, new TaskError(ErrorCodes.StorageFull, "The disk of the data directory is full: the task's output could not be stored."));
        switch (resources?.LimitHit)
        {
            case ResourceLimitKind.Memory:
                return (TaskState.Failed, new TaskError(ErrorCodes.MemoryLimit,
                    $"The task's tree reached its memory limit{(resources.OomKills is > 0 ? $"; the kernel killed {resources.OomKills} process(es)" : "")}."));
            case ResourceLimitKind.Pids:
                return (TaskState.Failed, new TaskError(ErrorCodes.PidsLimit, "The task's tree reached its limit of processes: a fork failed."));
        }

        // A cancel's interrupt may still get a good result; a timeout is a bound, and what ends after it ran past it.
        if (agent?.Kind == AgentOutcomeKind.Succeeded && (resultBeforeStop || stop is not (StopReason.Timeout or StopReason.Stall)))
            return (TaskState.Succeeded, null);
        switch (stop)
        {
            case StopReason.Cancel:
                return (TaskState.Cancelled, new TaskError(ErrorCodes.Cancelled, "Cancelled by a caller."));
            case StopReason.Timeout:
                return (TaskState.TimedOut, new TaskError(ErrorCodes.Timeout, $"The task ran longer than its timeout of {timeout?.TotalSeconds}s."));
            case StopReason.Stall:
                return (TaskState.TimedOut, new TaskError(ErrorCodes.Stall, $"The agent printed nothing for {stall?.TotalSeconds}s."));
            case StopReason.Shutdown:
                return (TaskState.Interrupted, new TaskError(ErrorCodes.Interrupted, "The server shut down while the task was running."));
            case StopReason.Fenced:
                return (TaskState.Interrupted, new TaskError(ErrorCodes.Interrupted,
                    "The node running the task lost its lease on it (it could not reach the task database in time), so it killed the task's tree."));
        }

        if (agent?.Kind == AgentOutcomeKind.Failed)
        {
            string detail = agent.Result?.Text is { Length: > 0 } t ? " " + (t.Length <= 500 ? t : t[..500] + "…") : "";
            return (TaskState.Failed, new TaskError(ErrorCodes.AgentError, agent.Message ?? ("The agent reported an error." + detail)));
        }

        return (TaskState.Lost, new TaskError(ErrorCodes.ResultLost, agent?.Message ?? "The agent ended without a result."));
    }

    /// <summary>The final record of a task that ran (or was stopped before it could), ending at <paramref name="now"/>.</summary>
    public static TaskRecord Final(TaskRecord current, RunResult run, TimeSpan? timeout, TimeSpan? stall, DateTimeOffset now)
    {
        var (status, error) = Decide(run.Agent, run.Stop, run.Failure, timeout, stall, run.Process?.Resources, run.ResultBeforeStop);
        return current with
        {
            Status = status,
            EndedAt = now,
            SessionId = run.Agent?.SessionId ?? current.SessionId,
            Result = run.Agent?.Result,
            Usage = run.Agent?.Usage,
            CostUsd = run.Agent?.CostUsd,
            DurationMs = current.StartedAt is { } started ? (long)(now - started).TotalMilliseconds : null,
            Process = run.Process,
            Output = run.Output ?? current.Output,
            Error = error,
        };
    }

    /// <summary>The final record of a task that ended without running: cancelled while queued.</summary>
    public static TaskRecord Unstarted(TaskRecord current, StopReason reason, DateTimeOffset now) =>
        Final(current, new RunResult(null, null, reason, null, null), null, null, now);
}
