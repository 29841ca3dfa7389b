namespace Corral.Processes.Tests;

/// <summary>
/// A window of PIDs, or a scan of /proc, is proof only if PID allocation did not go round meanwhile: the rules are pure
/// functions of the kernel's counters before and after.
/// </summary>
public sealed class PidCountersTests
{
    [Fact(Timeout = 10_000)]
    public void The_counters_are_read_from_this_kernel()
    {
        var counters = PidCounters.Read();
        Assert.NotNull(counters);
        Assert.InRange(counters.LastPid, 1, counters.MaxPid);
        Assert.True(counters.Tasks > 0 && counters.Forks > 0);

        var later = PidCounters.Read()!;
        Assert.True(later.Forks >= counters.Forks);
        Assert.False(later.MayHaveGoneRoundSince(counters), $"{counters} → {later}");
    }

    [Theory(Timeout = 10_000)]
    [InlineData(1000, 120, 1010, 32768, false)]   // ten forks: nowhere near going round
    [InlineData(1000, 120, 9026, 32768, false)]   // 4 × 8,026 + 3 × 120 = 32,464: short of pid_max - 300
    [InlineData(1000, 120, 9027, 32768, true)]    // 4 × 8,027 + 3 × 120 = 32,468: may have gone round
    [InlineData(1000, 120, 18000, 4194304, false)] // more forks under a large pid_max
    [InlineData(5000, 10822, 5000, 32768, false)] // a third of the PIDs may be in use, nothing created
    [InlineData(5000, 10822, 5001, 32768, true)]  // then one fork may reuse the range
    [InlineData(1000, 120, 999, 32768, true)]     // counters went backwards (another namespace, a bad read)
    [InlineData(1000, 120, 1000, 300, true)]      // pid_max at or below the reserved PIDs
    public void Allocation_may_have_gone_round_once_enough_tasks_were_created_to_pass_every_free_pid(
        long forksBefore, int tasks, long forksAfter, int maxPid, bool goneRound)
    {
        var before = new PidCounters(500, tasks, forksBefore, maxPid);
        var after = new PidCounters(600, tasks, forksAfter, maxPid);
        Assert.Equal(goneRound, after.MayHaveGoneRoundSince(before));
        Assert.Equal(goneRound, after.MayHaveWrappedSince(before));
    }

    [Theory(Timeout = 10_000)]
    [InlineData(1000, 1010, 100, 110, false)] // ten forks, the last PID went up by ten
    [InlineData(1000, 990, 100, 110, true)]   // the last PID went down: allocation passed pid_max
    [InlineData(1000, 1000, 100, 100, false)] // nothing happened
    [InlineData(32000, 400, 100, 1200, true)] // few forks, but from near pid_max to the bottom
    public void A_scan_in_pid_order_may_have_missed_a_process_when_the_last_pid_went_down(
        int lastBefore, int lastAfter, long forksBefore, long forksAfter, bool wrapped)
    {
        var before = new PidCounters(lastBefore, 200, forksBefore, 32_768);
        var after = new PidCounters(lastAfter, 200, forksAfter, 32_768);
        Assert.False(after.MayHaveGoneRoundSince(before));
        Assert.Equal(wrapped, after.MayHaveWrappedSince(before));
    }
}
