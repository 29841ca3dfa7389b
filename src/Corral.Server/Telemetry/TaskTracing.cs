using System.Collections.Concurrent;
using System.Diagnostics;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Internal.Scheduling;

namespace Corral.Server.Telemetry;

/// <summary>
/// One span per task (<c>corral.task</c>), with a child span per phase (<c>corral.task.admission</c>, <c>.queue</c>,
/// <c>.run</c>, <c>.teardown</c>, <c>.store</c>) timed from the record, and the process facts as attributes. The task
/// span is a child of the request that created it, so the caller's <c>traceparent</c> (taken by ASP.NET Core's
/// instrumentation) and the agent run share one trace. Spans are made when the task ends, with the timestamps it
/// recorded; nothing is held open while it runs.
/// </summary>
internal sealed class TaskTracing : ITaskObserver, IDisposable
{
    private readonly ActivitySource _source = new(TelemetryNames.Source, typeof(TaskTracing).Assembly.GetName().Version?.ToString());
    private readonly ConcurrentDictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private readonly TimeProvider _time;

    public TaskTracing(TimeProvider time) => _time = time;

    /// <summary>What is known of a task before its end: the request it came from, when it was accepted, why it waited.</summary>
    private sealed record Pending(ActivityContext Parent, DateTimeOffset? RequestStart, DateTimeOffset Accepted)
    {
        public string? QueueReason { get; set; }
    }

    public void Accepted(TaskRecord record)
    {
        var request = Activity.Current;
        _pending[record.Id] = new Pending(request?.Context ?? default, request is null ? null : new DateTimeOffset(request.StartTimeUtc, TimeSpan.Zero), _time.GetUtcNow())
        {
            QueueReason = record.QueueReason,
        };
    }

    public void Updated(TaskRecord record)
    {
        if (record.QueueReason is { } reason && _pending.TryGetValue(record.Id, out var pending))
            pending.QueueReason = reason;
    }

    public void Ended(TaskRecord record)
    {
        if (!_source.HasListeners())
        {
            _pending.TryRemove(record.Id, out _);
            return;
        }

        var stored = _time.GetUtcNow();
        _pending.TryRemove(record.Id, out var pending);
        var previous = Activity.Current;
        try
        {
            // The end is told on whatever flow ended the task (a cancel request, the scheduler): never parent on that.
            Activity.Current = null;
            Emit(record, pending, stored);
        }
        finally
        {
            Activity.Current = previous;
        }
    }

    private void Emit(TaskRecord record, Pending? pending, DateTimeOffset stored)
    {
        var whole = TaskPhases.Whole(record, pending?.RequestStart, stored);
        using var task = _source.StartActivity("corral.task", ActivityKind.Internal, pending?.Parent ?? default, TaskTags(record, pending), startTime: whole.Start);
        if (task is null)
            return;
        if (record.Process is { } process)
            AddProcessTags(task, process);
        task.SetStatus(record.Status switch
        {
            TaskState.Succeeded => ActivityStatusCode.Ok,
            TaskState.Cancelled => ActivityStatusCode.Unset,
            _ => ActivityStatusCode.Error,
        }, record.Error?.Message);

        foreach (var phase in TaskPhases.Of(record, pending?.RequestStart, pending?.Accepted, stored))
        {
            using var span = _source.StartActivity("corral.task." + phase.Name, ActivityKind.Internal, task.Context, startTime: phase.Start);
            if (span is null)
                continue;
            span.SetTag("corral.task.id", record.Id);
            if (phase.Name == "queue" && pending?.QueueReason is { } reason)
                span.SetTag("corral.task.queue_reason", reason);
            if (phase.Name == "run" && record.Process is { } run)
                AddProcessTags(span, run);
            if (phase.Name == "teardown" && record.Process is { } torn)
                AddKilledEvents(span, torn);
            End(span, phase.End);
        }

        End(task, whole.End);
    }

    private static ActivityTagsCollection TaskTags(TaskRecord record, Pending? pending)
    {
        var tags = new ActivityTagsCollection
        {
            ["corral.task.id"] = record.Id,
            ["corral.agent"] = record.Agent,
            ["corral.task.status"] = TelemetryNames.Status(record.Status),
        };
        if (record.Error is { } error)
            tags["corral.task.error_code"] = error.Code;
        if (record.SessionId is { } session)
            tags["corral.session.id"] = session;
        if (record.Uid is { } uid)
            tags["corral.task.uid"] = uid;
        if (record.CostUsd is { } cost)
            tags["corral.task.cost_usd"] = cost;
        if (record.Result?.NumTurns is { } turns)
            tags["corral.task.num_turns"] = turns;
        if (record.DurationMs is { } ms)
            tags["corral.task.duration_ms"] = ms;
        if (record.StartedAt is { } started)
            tags["corral.task.queue_wait_ms"] = Math.Round((started - record.CreatedAt).TotalMilliseconds, 3);
        if (pending?.QueueReason is { } reason)
            tags["corral.task.queue_reason"] = reason;
        return tags;
    }

    private static void AddProcessTags(Activity span, ProcessOutcome process)
    {
        span.SetTag("process.pid", process.Pid);
        if (process.ExitCode is { } exit)
            span.SetTag("process.exit.code", exit);
        if (process.Signal is { } signal)
            span.SetTag("corral.process.signal", signal);
        span.SetTag("corral.process.reason", process.Reason.ToString().ToLowerInvariant());
        span.SetTag("corral.process.containment", process.Containment.ToString().ToLowerInvariant());
        span.SetTag("corral.process.killed", process.Killed.Count);
        span.SetTag("corral.process.escapees_killed", TelemetryNames.Escapees(process));
        span.SetTag("corral.process.holder_survived", process.HolderSurvived);
        span.SetTag("corral.process.drain_after_exit_ms", Math.Round(process.DrainAfterExit.TotalMilliseconds, 3));
        span.SetTag("corral.process.teardown_ms", Math.Round(process.TeardownDuration.TotalMilliseconds, 3));
        span.SetTag("corral.process.stdout_bytes", process.StandardOutputBytes);
        span.SetTag("corral.process.stderr_bytes", process.StandardErrorBytes);
        var used = process.Resources;
        if (used.MemoryPeakBytes is { } memory)
            span.SetTag("corral.resources.memory_peak_bytes", memory);
        if (used.PidsPeak is { } pids)
            span.SetTag("corral.resources.pids_peak", pids);
        if (used.CpuUser is { } user)
            span.SetTag("corral.resources.cpu_user_ms", Math.Round(user.TotalMilliseconds, 3));
        if (used.CpuSystem is { } system)
            span.SetTag("corral.resources.cpu_system_ms", Math.Round(system.TotalMilliseconds, 3));
        if (used.OomKills is { } oom)
            span.SetTag("corral.resources.oom_kills", oom);
        if (used.LimitHit is { } limit)
            span.SetTag("corral.resources.limit_hit", TelemetryNames.Limit(limit));
    }

    /// <summary>One event per killed process, at the start of teardown (the signals go out in one burst then).</summary>
    private static void AddKilledEvents(Activity span, ProcessOutcome process)
    {
        var at = process.CompletedAt - process.TeardownDuration;
        if (at < process.ExitedAt)
            at = process.ExitedAt;
        foreach (var killed in process.Killed)
        {
            span.AddEvent(new ActivityEvent("process.killed", at, new ActivityTagsCollection
            {
                ["process.pid"] = killed.Pid,
                ["process.command_line"] = killed.CommandLine,
                ["corral.found_by"] = TelemetryNames.FoundBy(killed.FoundBy),
                ["corral.escapee"] = killed.Pid != process.Pid,
            }));
        }
    }

    /// <summary>Ends a span at a recorded time (a zero-length phase gets one tick: a zero duration would mean "now").</summary>
    private static void End(Activity span, DateTimeOffset end)
    {
        var at = end.UtcDateTime;
        span.SetEndTime(at > span.StartTimeUtc ? at : span.StartTimeUtc.AddTicks(1));
    }

    public void Dispose() => _source.Dispose();
}
