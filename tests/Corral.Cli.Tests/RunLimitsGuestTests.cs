using System.Text.Json;
using Corral.Cli.Tests.Support;

namespace Corral.Cli.Tests;

/// <summary>
/// <c>--memory-max</c>, <c>--pids-max</c> and <c>--cpu-max</c> enforced, inside a QEMU guest with a pure cgroup v2
/// hierarchy that the suite boots itself (one boot for every case, see <see cref="LimitsGuest"/>): this host binds
/// the controllers to cgroup v1. Skipped where QEMU cannot be installed; CI sets CORRAL_REQUIRE_GUEST=1. The facts
/// only read what the guest wrote; the one process, QEMU, runs in the fixture under a deadline (10 minutes; a guest that stalls as a whole is booted once more).
/// </summary>
public sealed class RunLimitsGuestTests(LimitsGuest guest) : IClassFixture<LimitsGuest>
{
    [Fact]
    public void A_200_MB_allocation_under_memory_max_64M_is_OOM_killed_and_reported()
    {
        var report = guest.Report("memory");
        var resources = report.GetProperty("resources");

        Assert.Equal(137, guest.ExitCode("memory"));
        Assert.Equal("signaled", report.GetProperty("reason").GetString());
        Assert.Equal(9, report.GetProperty("signal").GetInt32());
        Assert.Equal("memory", resources.GetProperty("limitHit").GetString());
        Assert.True(resources.GetProperty("oomKills").GetInt64() >= 1);
        Assert.InRange(resources.GetProperty("memoryPeakBytes").GetInt64(), 32L << 20, 64L << 20);
        Assert.True(resources.GetProperty("enforced").GetProperty("memory").GetBoolean());

        // corral made room for its leaves in its delegated cgroup: it moved itself aside, as a Delegate=yes service does.
        Assert.Equal(["corral", "supervisor"], Cgroups(guest.Result.Read("memory.cgroups")));
    }

    [Fact]
    public void A_fork_bomb_under_pids_max_20_is_contained_and_reported()
    {
        var report = guest.Report("pids");
        var resources = report.GetProperty("resources");

        Assert.Equal(124, guest.ExitCode("pids"));
        Assert.Equal("timedOut", report.GetProperty("reason").GetString());
        Assert.Equal("pids", resources.GetProperty("limitHit").GetString());
        Assert.True(resources.GetProperty("enforced").GetProperty("pids").GetBoolean());
        Assert.InRange(resources.GetProperty("pidsPeak").GetInt64(), 2, 20);
        var killed = report.GetProperty("killed").EnumerateArray().ToList();
        Assert.NotEmpty(killed);
        Assert.All(killed, k => Assert.Equal("cgroup", k.GetProperty("foundBy").GetString()));
        Assert.Contains("fork", guest.Result.Read("pids.out"));
        Assert.Equal("", guest.Result.Read("pids.leaves")?.Trim());
    }

    [Fact]
    public void Cpu_max_0_2_holds_a_busy_loop_near_a_fifth_of_a_core()
    {
        var report = guest.Report("cpu");
        var resources = report.GetProperty("resources");

        Assert.Equal(124, guest.ExitCode("cpu"));
        Assert.True(resources.GetProperty("enforced").GetProperty("cpu").GetBoolean());
        double cpu = resources.GetProperty("cpuUserMs").GetDouble() + resources.GetProperty("cpuSystemMs").GetDouble();
        double wall = (report.GetProperty("exitedAt").GetDateTimeOffset() - report.GetProperty("startedAt").GetDateTimeOffset()).TotalMilliseconds;
        // Loose: the guest is emulated on two shared cores. Unthrottled, the loop would take a whole core (1.0).
        Assert.InRange(cpu / wall, 0.08, 0.35);
    }

    [Fact]
    public void The_neighbour_tree_is_untouched_by_all_three()
    {
        var report = guest.Report("neighbour");
        var resources = report.GetProperty("resources");
        int pid = report.GetProperty("pid").GetInt32();

        Assert.Equal(0, guest.ExitCode("neighbour"));
        Assert.Equal("exited", report.GetProperty("reason").GetString());
        Assert.Empty(report.GetProperty("killed").EnumerateArray());
        Assert.Equal(JsonValueKind.Null, resources.GetProperty("limitHit").ValueKind);
        Assert.Equal(0, resources.GetProperty("oomKills").GetInt64());
        Assert.True(resources.GetProperty("enforced").GetProperty("memory").GetBoolean());
        Assert.True(resources.GetProperty("enforced").GetProperty("pids").GetBoolean());

        // It ran all along: its shell was in its leaf after every case, and it never missed a tick.
        foreach (string after in new[] { "before", "memory", "pids", "cpu" })
            Assert.Contains(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), guest.Result.Read("neighbour." + after)?.Split('\n') ?? []);
        var lines = guest.Result.Read("neighbour.out")!.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        int ticks = int.Parse(lines[^1].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(Enumerable.Range(1, ticks).Select(i => $"tick {i}"), lines[..^1]);
        Assert.True(ticks >= 10, $"only {ticks} ticks");
    }

    private static string[] Cgroups(string? listing) =>
        (listing ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(n => !n.Contains('.')).Order().ToArray();
}
