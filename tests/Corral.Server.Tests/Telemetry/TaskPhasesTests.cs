using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Telemetry;

namespace Corral.Server.Tests.Telemetry;

/// <summary>Where a task spent its time, from its record's timestamps: each phase where the one before ended.</summary>
public sealed class TaskPhasesTests
{
    private static readonly DateTimeOffset T0 = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    private static DateTimeOffset At(double ms) => T0.AddMilliseconds(ms);

    private static TaskRecord Record(TaskState status, double? started, ProcessOutcome? process, double ended) => new()
    {
        Id = "tsk_1",
        Status = status,
        Agent = "command",
        CreatedAt = At(10),
        StartedAt = started is { } s ? At(s) : null,
        EndedAt = At(ended),
        Process = process,
    };

    private static ProcessOutcome Process(double started, double exited, double completed) => new()
    {
        Pid = 42,
        TreeId = "t",
        Reason = ExitReason.Exited,
        ExitCode = 0,
        StartedAt = At(started),
        ExitedAt = At(exited),
        CompletedAt = At(completed),
        Containment = ContainmentKind.Cgroup,
    };

    [Fact]
    public void A_task_that_ran_goes_through_admission_queue_run_teardown_and_store()
    {
        var record = Record(TaskState.Succeeded, started: 50, Process(60, 900, 930), ended: 940);
        var phases = TaskPhases.Of(record, requestStart: At(0), accepted: At(20), stored: At(945));

        Assert.Equal(
            [("admission", 0.0, 20.0), ("queue", 20, 50), ("run", 50, 900), ("teardown", 900, 930), ("store", 940, 945)],
            phases.Select(p => (p.Name, (p.Start - T0).TotalMilliseconds, (p.End - T0).TotalMilliseconds)));
        Assert.Equal(new TaskPhase("task", At(0), At(945)), TaskPhases.Whole(record, At(0), At(945)));
    }

    [Fact]
    public void A_task_cancelled_in_the_queue_has_no_run()
    {
        var record = Record(TaskState.Cancelled, started: null, process: null, ended: 300);
        var phases = TaskPhases.Of(record, requestStart: null, accepted: At(15), stored: At(305));

        Assert.Equal(["admission", "queue", "store"], phases.Select(p => p.Name));
        Assert.Equal((At(10), At(15)), (phases[0].Start, phases[0].End)); // no request: from the task's creation
        Assert.Equal((At(15), At(300)), (phases[1].Start, phases[1].End));
    }

    [Fact]
    public void A_task_whose_start_failed_runs_until_its_end_without_teardown()
    {
        var record = Record(TaskState.Failed, started: 40, process: null, ended: 45);
        var phases = TaskPhases.Of(record, At(0), At(20), At(50));

        Assert.Equal(["admission", "queue", "run", "store"], phases.Select(p => p.Name));
        Assert.Equal((At(40), At(45)), (phases[2].Start, phases[2].End));
    }

    [Fact]
    public void Clocks_that_disagree_never_make_a_phase_run_backwards()
    {
        // The process's clock read a little before the record's start, and the store before the end.
        var record = Record(TaskState.Succeeded, started: 50, Process(45, 48, 49), ended: 60);
        var phases = TaskPhases.Of(record, At(0), At(70), At(55));

        Assert.All(phases, p => Assert.True(p.End >= p.Start, p.Name));
        for (int i = 1; i < phases.Count; i++)
            Assert.True(phases[i].Start >= phases[i - 1].End, phases[i].Name);
        Assert.Equal(At(60), phases[^1].End); // never before the record's end
    }
}
