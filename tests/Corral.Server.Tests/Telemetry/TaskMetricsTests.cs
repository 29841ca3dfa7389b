using System.Diagnostics.Metrics;
using Corral.Agents.ClaudeCode;
using Corral.Agents.Command;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Agents;
using Corral.Server.Telemetry;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Corral.Server.Tests.Telemetry;

/// <summary>What the task observer records for a record, measured with a listener on its meter (no exporter in between).</summary>
public sealed class TaskMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MeterListener _listener = new();
    private readonly List<(string Instrument, double Value, Dictionary<string, string> Tags)> _measured = [];
    private readonly TaskMetrics _metrics;

    public TaskMetricsTests()
    {
        var factory = _services.GetRequiredService<IMeterFactory>();
        var catalog = new AgentCatalog([new AgentRegistration("Command", _ => new CommandAdapter()), new AgentRegistration("ClaudeCode", _ => new ClaudeCodeAdapter(new ClaudeCodeSettings()))], new ConfigurationBuilder().Build());
        _metrics = new TaskMetrics(factory, catalog, TimeProvider.System);
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == factory && instrument.Meter.Name == TelemetryNames.Source)
                listener.EnableMeasurementEvents(instrument);
        };
        _listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Measured(i, v, tags));
        _listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Measured(i, v, tags));
        _listener.Start();
    }

    private void Measured(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        lock (_measured)
            _measured.Add((instrument.Name, value, tags.ToArray().ToDictionary(t => t.Key, t => (string)t.Value!)));
    }

    private double Total(string instrument, params (string Key, string Value)[] tags)
    {
        lock (_measured)
            return _measured.Where(m => m.Instrument == instrument && tags.All(t => m.Tags.GetValueOrDefault(t.Key) == t.Value)).Sum(m => m.Value);
    }

    [Fact]
    public void A_task_that_hit_its_memory_limit_is_counted_with_its_kills_receipt_and_cost()
    {
        var started = DateTimeOffset.UtcNow;
        var record = new TaskRecord
        {
            Id = "tsk_m",
            Status = TaskState.Failed,
            Agent = "command",
            CreatedAt = started.AddSeconds(-3),
            StartedAt = started,
            EndedAt = started.AddSeconds(2),
            DurationMs = 2000,
            CostUsd = 0.5,
            Error = new TaskError("memory_limit", "The task ran out of memory."),
            Process = new ProcessOutcome
            {
                Pid = 10,
                TreeId = "t",
                Reason = ExitReason.Signaled,
                Signal = 9,
                StartedAt = started,
                ExitedAt = started.AddSeconds(1.9),
                CompletedAt = started.AddSeconds(1.95),
                TeardownDuration = TimeSpan.FromMilliseconds(20),
                Containment = ContainmentKind.Cgroup,
                Killed = [new(10, "stress", FoundBy.Cgroup), new(11, "stress-worker", FoundBy.Cgroup), new(12, "holder", FoundBy.PipeHolder)],
                HolderSurvived = true,
                Resources = new ResourceUsage
                {
                    MemoryPeakBytes = 100 << 20,
                    PidsPeak = 7,
                    CpuUser = TimeSpan.FromSeconds(1.5),
                    CpuSystem = TimeSpan.FromSeconds(0.5),
                    OomKills = 1,
                    LimitHit = ResourceLimitKind.Memory,
                    Enforced = new EnforcedLimits(true, false, false),
                },
            },
        };

        _metrics.Accepted(record with { Status = TaskState.Queued, StartedAt = null });
        _metrics.Started(record with { Status = TaskState.Running });
        _metrics.Ended(record);

        Assert.Equal(1, Total("corral.tasks.started", ("agent", "command")));
        Assert.Equal(3, Total("corral.task.queue_wait"), 3);
        Assert.Equal(1, Total("corral.tasks.finished", ("agent", "command"), ("status", "failed"), ("error_code", "memory_limit")));
        Assert.Equal(2, Total("corral.task.duration", ("status", "failed")));
        Assert.Equal(0.05, Total("corral.task.drain_after_exit"), 6);
        Assert.Equal(0.02, Total("corral.task.teardown"), 6);
        Assert.Equal(2, Total("corral.processes.killed", ("found_by", "cgroup")));
        Assert.Equal(1, Total("corral.processes.killed", ("found_by", "pipeHolder")));
        Assert.Equal(1, Total("corral.escapees.killed", ("found_by", "cgroup")));
        Assert.Equal(1, Total("corral.escapees.killed", ("found_by", "pipeHolder")));
        Assert.Equal(1, Total("corral.holders.survived"));
        Assert.Equal(100 << 20, Total("corral.task.memory.peak"));
        Assert.Equal(7, Total("corral.task.pids.peak"));
        Assert.Equal(1.5, Total("corral.task.cpu.time", ("mode", "user")), 6);
        Assert.Equal(0.5, Total("corral.task.cpu.time", ("mode", "system")), 6);
        Assert.Equal(1, Total("corral.task.oom_kills"));
        Assert.Equal(1, Total("corral.task.limit_hits", ("limit", "memory")));
        Assert.Equal(0.5, Total("corral.task.cost_usd"), 6);
    }

    [Fact]
    public void Refusals_name_a_configured_agent_or_none_never_what_the_client_sent()
    {
        _metrics.Refused("command", RefusalCode.Busy);
        _metrics.Refused("{\"x\": 1}, evil-label", RefusalCode.InvalidRequest);
        _metrics.Refused(null, RefusalCode.InvalidRequest);

        Assert.Equal(1, Total("corral.admission.refusals", ("agent", "command"), ("reason", "busy")));
        Assert.Equal(1, Total("corral.admission.refusals", ("agent", "unknown"), ("reason", "invalid_request")));
        Assert.Equal(1, Total("corral.admission.refusals", ("agent", "none"), ("reason", "invalid_request")));
    }

    [Fact]
    public void The_gauges_count_the_tasks_queued_and_running_now_and_zero_for_an_idle_agent()
    {
        var now = DateTimeOffset.UtcNow;
        TaskRecord Task(string id, TaskState status) => new() { Id = id, Status = status, Agent = "command", CreatedAt = now };
        _metrics.Accepted(Task("a", TaskState.Queued));
        _metrics.Accepted(Task("b", TaskState.Queued));
        _metrics.Accepted(Task("c", TaskState.Queued));
        _metrics.Started(Task("b", TaskState.Running) with { StartedAt = now });
        _metrics.Started(Task("c", TaskState.Running) with { StartedAt = now });
        _metrics.Ended(Task("c", TaskState.Succeeded));

        lock (_measured)
            _measured.Clear();
        _listener.RecordObservableInstruments();
        Assert.Equal(1, Total("corral.tasks.queued", ("agent", "command")));
        Assert.Equal(1, Total("corral.tasks.running", ("agent", "command")));
        // An agent with nothing to count reads zero, not "no data".
        lock (_measured)
            Assert.Equal(2, _measured.Count(m => m.Instrument.StartsWith("corral.tasks.", StringComparison.Ordinal) && m.Tags["agent"] == "claude-code" && m.Value == 0));
    }

    public void Dispose()
    {
        _listener.Dispose();
        _services.Dispose();
    }
}
