using Corral.Server.Internal.Isolation;

namespace Corral.Server.Tests.Isolation;

/// <summary>
/// A scan of /proc proves that nothing runs as a uid only if PID allocation did not go round during it: the rule is a
/// pure function of the kernel's counters before and after.
/// </summary>
public sealed class PidCounterTests
{
    [Fact(Timeout = 10_000)]
    public void The_counters_are_read_from_this_kernel()
    {
        var counters = PidCounters.Read();
        Assert.NotNull(counters);
        Assert.InRange(counters.LastPid, 1, counters.PidMax);
        Assert.True(counters.Tasks > 0 && counters.Forks > 0);
    }

    [Theory(Timeout = 10_000)]
    [InlineData(1000, 1010, 100, 110, 200, false)] // ten forks, the last PID went up by ten
    [InlineData(1000, 990, 100, 110, 200, true)] // the last PID went down: allocation went round
    [InlineData(1000, 1000, 100, 100, 200, false)] // nothing happened
    [InlineData(1000, 1500, 100, 16_300, 200, true)] // 16,200 forks with pid_max 32,768: may have gone all the way round
    [InlineData(1000, 1500, 100, 16_300, 200, false, 4_194_304)] // the same with pid_max 4,194,304: cannot have
    [InlineData(1000, 1001, 100, 99, 200, true)] // counters that make no sense are not proof
    public void Allocation_may_have_wrapped_when_the_last_pid_went_down_or_enough_forks_happened_to_go_round(
        int lastBefore, int lastAfter, long forksBefore, long forksAfter, int tasks, bool wrapped, int pidMax = 32_768)
    {
        var before = new PidCounters(lastBefore, tasks, forksBefore, pidMax);
        var after = new PidCounters(lastAfter, tasks, forksAfter, pidMax);
        Assert.Equal(wrapped, PidCounters.MayHaveWrapped(before, after));
    }
}
