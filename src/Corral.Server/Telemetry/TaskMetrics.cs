using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Corral.Server.Api;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Agents;
using Corral.Server.Internal.Scheduling;

namespace Corral.Server.Telemetry;

/// <summary>
/// The task metrics (<c>/metrics</c>), from what the task core tells its observers: tasks started and finished, how
/// long they waited and ran, what teardown killed and how each was found, refusals, resource peaks, and how many
/// tasks are running and queued now. Label values are the API's own spellings; the agent of a refused request is
/// kept only when it names a configured agent (anything else a client sends would be a label of its choosing).
/// </summary>
internal sealed class TaskMetrics : ITaskObserver
{
    /// <summary>Seconds, for task-sized durations (run, queue wait).</summary>
    private static readonly double[] TaskSeconds = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200];

    /// <summary>Seconds, for teardown-sized durations (drain after exit, teardown): the target is tens of milliseconds.</summary>
    private static readonly double[] TeardownSeconds = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private static readonly double[] MemoryBytes = [16 << 20, 64 << 20, 128 << 20, 256 << 20, 512 << 20, 1L << 30, 2L << 30, 4L << 30, 8L << 30, 16L << 30];

    private static readonly double[] ProcessCounts = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

    private readonly AgentCatalog _catalog;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<string, (string Agent, TaskState State)> _active = new(StringComparer.Ordinal);
    private readonly Counter<long> _started;
    private readonly Counter<long> _finished;
    private readonly Histogram<double> _duration;
    private readonly Histogram<double> _queueWait;
    private readonly Histogram<double> _drain;
    private readonly Histogram<double> _teardown;
    private readonly Counter<long> _killed;
    private readonly Counter<long> _escapees;
    private readonly Counter<long> _holders;
    private readonly Counter<long> _refusals;
    private readonly Histogram<double> _memoryPeak;
    private readonly Histogram<double> _pidsPeak;
    private readonly Counter<double> _cpu;
    private readonly Counter<long> _oomKills;
    private readonly Counter<long> _limitHits;
    private readonly Counter<double> _cost;

    public TaskMetrics(IMeterFactory meters, AgentCatalog catalog, TimeProvider time)
    {
        _catalog = catalog;
        _time = time;
        var meter = meters.Create(TelemetryNames.Source);
        _started = meter.CreateCounter<long>("corral.tasks.started", "{task}", "Tasks whose process started.");
        _finished = meter.CreateCounter<long>("corral.tasks.finished", "{task}", "Tasks that reached a final status (status, error_code).");
        _duration = Histogram(meter, "corral.task.duration", "s", "From a task's start to its end (durationMs of the record).", TaskSeconds);
        _queueWait = Histogram(meter, "corral.task.queue_wait", "s", "From a task's acceptance to its start.", TaskSeconds);
        _drain = Histogram(meter, "corral.task.drain_after_exit", "s", "From the direct child's exit to the task's output drained and tree gone.", TeardownSeconds);
        _teardown = Histogram(meter, "corral.task.teardown", "s", "Time teardown spent signalling and waiting for processes.", TeardownSeconds);
        _killed = meter.CreateCounter<long>("corral.processes.killed", "{process}", "Processes teardown killed, by how each was found (found_by).");
        _escapees = meter.CreateCounter<long>("corral.escapees.killed", "{process}", "Killed processes other than the direct child: escapees and leftovers.");
        _holders = meter.CreateCounter<long>("corral.holders.survived", "{task}", "Tasks after which a process still held an output pipe.");
        _refusals = meter.CreateCounter<long>("corral.admission.refusals", "{request}", "Task requests refused before a task existed, by reason.");
        _memoryPeak = Histogram(meter, "corral.task.memory.peak", "By", "The most memory a task's tree used at once (cgroup memory.peak).", MemoryBytes);
        _pidsPeak = Histogram(meter, "corral.task.pids.peak", "{process}", "The most processes a task's tree had at once (pids.peak).", ProcessCounts);
        _cpu = meter.CreateCounter<double>("corral.task.cpu.time", "s", "CPU time of finished tasks' trees (mode: user, system).");
        _oomKills = meter.CreateCounter<long>("corral.task.oom_kills", "{process}", "Processes of task trees the OOM killer killed.");
        _limitHits = meter.CreateCounter<long>("corral.task.limit_hits", "{task}", "Tasks that ran into a resource limit (limit: memory, pids).");
        _cost = meter.CreateCounter<double>("corral.task.cost_usd", "{USD}", "Cost of finished tasks as their agents reported it, in US dollars.");
        meter.CreateObservableGauge("corral.tasks.running", () => Count(TaskState.Running), "{task}", "Tasks running now.");
        meter.CreateObservableGauge("corral.tasks.queued", () => Count(TaskState.Queued), "{task}", "Tasks waiting for a slot now.");
    }

    private static Histogram<double> Histogram(Meter meter, string name, string unit, string description, double[] buckets) =>
        meter.CreateHistogram(name, unit, description, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = buckets });

    public void Accepted(TaskRecord record) => _active[record.Id] = (record.Agent, record.Status);

    public void Updated(TaskRecord record) => _active[record.Id] = (record.Agent, record.Status);

    public void Started(TaskRecord record)
    {
        _active[record.Id] = (record.Agent, TaskState.Running);
        var agent = Tag("agent", record.Agent);
        _started.Add(1, agent);
        _queueWait.Record(Seconds((record.StartedAt ?? _time.GetUtcNow()) - record.CreatedAt), agent);
    }

    public void Ended(TaskRecord record)
    {
        _active.TryRemove(record.Id, out _);
        var agent = Tag("agent", record.Agent);
        var status = Tag("status", TelemetryNames.Status(record.Status));
        if (record.Error?.Code is { } code)
            _finished.Add(1, agent, status, Tag("error_code", code));
        else
            _finished.Add(1, agent, status);
        if (record.DurationMs is { } ms)
            _duration.Record(ms / 1000.0, agent, status);
        if (record.CostUsd is { } cost)
            _cost.Add(cost, agent);
        if (record.Process is not { } process)
            return;

        _drain.Record(Seconds(process.DrainAfterExit), agent);
        _teardown.Record(Seconds(process.TeardownDuration), agent);
        foreach (var group in process.Killed.GroupBy(k => k.FoundBy))
            _killed.Add(group.Count(), agent, Tag("found_by", TelemetryNames.FoundBy(group.Key)));
        foreach (var group in process.Killed.Where(k => k.Pid != process.Pid).GroupBy(k => k.FoundBy))
            _escapees.Add(group.Count(), agent, Tag("found_by", TelemetryNames.FoundBy(group.Key)));
        if (process.HolderSurvived)
            _holders.Add(1, agent);

        var used = process.Resources;
        if (used.MemoryPeakBytes is { } memory)
            _memoryPeak.Record(memory, agent);
        if (used.PidsPeak is { } pids)
            _pidsPeak.Record(pids, agent);
        if (used.CpuUser is { } user)
            _cpu.Add(Seconds(user), agent, Tag("mode", "user"));
        if (used.CpuSystem is { } system)
            _cpu.Add(Seconds(system), agent, Tag("mode", "system"));
        if (used.OomKills is { } oom and > 0)
            _oomKills.Add(oom, agent);
        if (used.LimitHit is { } limit)
            _limitHits.Add(1, agent, Tag("limit", TelemetryNames.Limit(limit)));
    }

    public void Refused(string? agent, RefusalCode code) =>
        _refusals.Add(1, Tag("agent", agent is null ? "none" : _catalog.Find(agent) is null ? "unknown" : agent), Tag("reason", TelemetryNames.Refusal(code)));

    /// <summary>Tasks in <paramref name="state"/> per configured agent, zero included (a gauge that vanishes reads as "no data").</summary>
    private IEnumerable<Measurement<long>> Count(TaskState state)
    {
        var counts = _catalog.Names.ToDictionary(n => n, _ => 0L, StringComparer.Ordinal);
        foreach (var (agent, s) in _active.Values)
        {
            if (s == state)
                counts[agent] = counts.GetValueOrDefault(agent) + 1;
        }

        return counts.Select(c => new Measurement<long>(c.Value, Tag("agent", c.Key)));
    }

    private static KeyValuePair<string, object?> Tag(string name, string value) => new(name, value);

    private static double Seconds(TimeSpan span) => Math.Max(0, span.TotalSeconds);
}
