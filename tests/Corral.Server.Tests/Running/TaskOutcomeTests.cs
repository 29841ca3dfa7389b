using Corral.Agents;
using Corral.Server.Api;
using Corral.Server.Internal.Running;

namespace Corral.Server.Tests.Running;

/// <summary>What a run means as a task: a pure function of what the run found.</summary>
public sealed class TaskOutcomeTests
{
    private static readonly AgentOutcome Success = new() { Kind = AgentOutcomeKind.Succeeded, Result = new AgentResult { Text = "ok" } };
    private static readonly AgentOutcome Failure = new() { Kind = AgentOutcomeKind.Failed, Message = "boom" };
    private static readonly AgentOutcome Lost = new() { Kind = AgentOutcomeKind.Lost, Message = "no result" };

    public static TheoryData<string, string?, string?, TaskState, string?> Cases => new()
    {
        { "succeeded", null, null, TaskState.Succeeded, null },
        { "succeeded", "Cancel", null, TaskState.Succeeded, null },          // the interrupt kept a good result
        { "failed", null, null, TaskState.Failed, "agent_error" },
        { "lost", null, null, TaskState.Lost, "result_lost" },
        { "failed", "Cancel", null, TaskState.Cancelled, "cancelled" },
        { "lost", "Timeout", null, TaskState.TimedOut, "timeout" },
        { "lost", "Stall", null, TaskState.TimedOut, "stall" },
        { "lost", "Shutdown", null, TaskState.Interrupted, "interrupted" },
        { "succeeded", "StorageFull", null, TaskState.Failed, "storage_full" }, // its output could not be kept
        { "none", null, "spawn_failed", TaskState.Failed, "spawn_failed" },
        { "succeeded", null, "storage_full", TaskState.Failed, "storage_full" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_status_follows_from_the_agent_the_stop_reason_and_the_failure(string agent, string? stop, string? failure, TaskState status, string? code)
    {
        var outcome = agent switch { "succeeded" => Success, "failed" => Failure, "lost" => Lost, _ => null };
        var reason = stop is null ? (StopReason?)null : Enum.Parse<StopReason>(stop);
        var run = failure is null ? null : new RunFailure(failure, "why");
        var (decided, error) = TaskOutcome.Decide(outcome, reason, run, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2));
        Assert.Equal(status, decided);
        Assert.Equal(code, error?.Code);
    }

    [Theory]
    [InlineData("Timeout", false, TaskState.TimedOut)]
    [InlineData("Stall", false, TaskState.TimedOut)]
    [InlineData("Timeout", true, TaskState.Succeeded)]
    [InlineData("Cancel", false, TaskState.Succeeded)]
    public void A_success_that_came_only_after_the_timeout_fired_is_a_timeout(string stop, bool resultBeforeStop, TaskState status)
    {
        var (decided, _) = TaskOutcome.Decide(Success, Enum.Parse<StopReason>(stop), null, TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(2), resultBeforeStop: resultBeforeStop);
        Assert.Equal(status, decided);
    }

    [Fact]
    public void The_final_record_carries_the_result_and_the_duration_from_the_start()
    {
        var start = new DateTimeOffset(2026, 12, 1, 8, 0, 0, TimeSpan.Zero);
        var running = new TaskRecord { Id = "tsk_1", Status = TaskState.Running, Agent = "command", CreatedAt = start, StartedAt = start, SessionId = "old" };
        var final = TaskOutcome.Final(running, new RunResult(Success with { SessionId = "new", CostUsd = 0.25 }, null, null, null, new TaskOutput(10, 0, 100, 0)),
            null, null, start.AddSeconds(3));
        Assert.Equal(TaskState.Succeeded, final.Status);
        Assert.Equal(3000, final.DurationMs);
        Assert.Equal("new", final.SessionId);
        Assert.Equal(0.25, final.CostUsd);
        Assert.Equal("ok", final.Result!.Text);
        Assert.Equal(10, final.Output!.StoredBytes);

        var cancelled = TaskOutcome.Unstarted(running with { Status = TaskState.Queued, StartedAt = null }, StopReason.Cancel, start.AddSeconds(1));
        Assert.Equal(TaskState.Cancelled, cancelled.Status);
        Assert.Null(cancelled.DurationMs);
    }

    [Theory]
    [InlineData(4.0, 0.0, null, null)]
    [InlineData(5.0, 0.0, "Timeout", null)]
    [InlineData(1.0, 2.0, null, "Stall")]
    [InlineData(9.0, 9.0, "Timeout", "Timeout")] // both passed: the whole-task timeout wins
    public void Deadlines_pass_on_elapsed_time_alone(double running, double silent, string? timeoutWins, string? stallWins)
    {
        var timeout = TimeSpan.FromSeconds(5);
        var stall = TimeSpan.FromSeconds(2);
        var passed = Deadlines.Passed(TimeSpan.FromSeconds(running), TimeSpan.FromSeconds(silent), timeout, stall);
        string? expected = timeoutWins ?? stallWins;
        Assert.Equal(expected, passed?.ToString());
        Assert.Null(Deadlines.Passed(TimeSpan.FromDays(1), TimeSpan.FromDays(1), null, null));
    }
}
