using Corral.Server.Api;

namespace Corral.Server.Telemetry;

/// <summary>One stretch of a task's life, as a span: <c>admission</c>, <c>queue</c>, <c>run</c>, <c>teardown</c> or <c>store</c>.</summary>
internal readonly record struct TaskPhase(string Name, DateTimeOffset Start, DateTimeOffset End);

/// <summary>
/// Where a task spent its time, from its final record and what an observer saw (when the request that created it began,
/// when it was accepted, when its end was stored). A pure function of those timestamps: each phase starts where the
/// one before ended or later, so clocks read in different places never make a phase run backwards.
/// </summary>
internal static class TaskPhases
{
    /// <summary>The whole task: from its request (or its creation) to its final record stored (and never before its end).</summary>
    public static TaskPhase Whole(TaskRecord record, DateTimeOffset? requestStart, DateTimeOffset stored)
    {
        var start = Min(requestStart ?? record.CreatedAt, record.CreatedAt);
        return new TaskPhase("task", start, Max(Max(start, stored), record.EndedAt ?? stored));
    }

    /// <summary>
    /// The phases, in order: <c>admission</c> (request to accepted: checks, journal, row), <c>queue</c> (to the start),
    /// <c>run</c> (to the direct child's exit), <c>teardown</c> (drain and teardown, to the tree gone), <c>store</c>
    /// (the final record made durable). A task that never started has no run; one without a process, no teardown.
    /// </summary>
    public static IReadOnlyList<TaskPhase> Of(TaskRecord record, DateTimeOffset? requestStart, DateTimeOffset? accepted, DateTimeOffset stored)
    {
        var whole = Whole(record, requestStart, stored);
        var phases = new List<TaskPhase>(5);
        var at = whole.Start;
        DateTimeOffset end = Max(record.EndedAt ?? stored, at);

        void Add(string name, DateTimeOffset until)
        {
            until = Clamp(until, at, whole.End);
            phases.Add(new TaskPhase(name, at, until));
            at = until;
        }

        Add("admission", accepted ?? record.CreatedAt);
        if (record.StartedAt is not { } started)
        {
            Add("queue", end);
        }
        else
        {
            Add("queue", started);
            if (record.Process is { } process)
            {
                Add("run", process.ExitedAt);
                Add("teardown", process.CompletedAt);
                at = Clamp(end, at, whole.End); // the outcome is worked out between the tree's end and the final record
            }
            else
            {
                Add("run", end);
            }
        }

        Add("store", whole.End);
        return phases;
    }

    private static DateTimeOffset Clamp(DateTimeOffset value, DateTimeOffset low, DateTimeOffset high) => value < low ? low : value > high ? high : value;

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;
}
