using System.Diagnostics;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Io;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>The PID window that lets session mode skip or shrink its /proc scans: it must always hold every descendant.</summary>
public sealed class PidWindowTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_descendant_is_inside_the_window_and_older_processes_are_not()
    {
        var counters = PidWindow.CountersBeforeSpawn();
        Assert.NotNull(counters);
        using var child = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "sleep 30 & echo $!; wait"]) { RedirectStandardOutput = true })!;
        try
        {
            int grandchild = int.Parse(await child.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken) ?? "0");
            var window = PidWindow.After(child.Id, counters)!;
            var span = window.Now();

            Assert.False(span.All);
            Assert.True(span.Contains(grandchild), $"grandchild {grandchild} outside {span}");
            Assert.True(span.Contains(child.Id));
            Assert.False(span.Contains(Environment.ProcessId));
            Assert.False(span.Contains(1));
            Assert.Contains(grandchild, span.NewestFirst());
        }
        finally
        {
            child.Kill(entireProcessTree: true);
        }
    }

    [Fact(Timeout = 10_000)]
    public void The_newest_process_starts_a_window_of_its_own()
    {
        // Unless something else spawned meanwhile (which moves the last PID on), the window is that process alone.
        var counters = PidWindow.CountersBeforeSpawn();
        int last = ProcFs.LastPid();
        Assert.True(last > 0);
        var span = PidWindow.After(last, counters)!.Now();
        Assert.False(span.All);
        Assert.Equal(last, span.NewestFirst().Last());
        Assert.False(span.Contains(last - 1));
    }

    [Theory(Timeout = 10_000)]
    [InlineData(101, 105, 1000, new[] { 105, 104, 103, 102, 101 })]
    [InlineData(998, 2, 1000, new[] { 2, 1, 999, 998 })]
    [InlineData(7, 7, 0, new[] { 7 })]
    public void Spans_run_newest_first_and_wrap_past_pid_max(int first, int last, int maxPid, int[] expected)
    {
        var span = new PidSpan(first, last, maxPid);
        Assert.Equal(expected, span.NewestFirst());
        Assert.Equal(expected.Length, span.Count);
        Assert.All(expected, pid => Assert.True(span.Contains(pid)));
        Assert.False(span.Contains(first - 1));
        Assert.False(span.Contains(last + 1));
    }

    [Theory(Timeout = 10_000)]
    [InlineData(100, 103, 1000, false, new[] { 103, 102, 101 })]
    [InlineData(997, 301, 1000, true, new[] { 301, 300, 299 })] // wrapped: the span runs round from 998 and covers 1…301
    [InlineData(999, 3, 1000, true, new[] { 3, 2, 1 })] // the last PID was pid_max − 1: allocation resumes low
    public void The_pids_handed_out_between_two_last_pids_are_the_cyclic_span_after_the_first(int last, int now, int maxPid, bool wrapped, int[] newest)
    {
        var (span, wraps) = ProcScanner.HandedOut(last, now, maxPid);
        Assert.Equal(wrapped, wraps);
        Assert.Equal(newest, span.NewestFirst().Take(newest.Length));
        Assert.False(span.Contains(last));
        Assert.False(span.Contains(now + 1));
        if (wrapped && last + 1 < maxPid)
            Assert.True(span.Contains(maxPid - 1) && span.Contains(last + 1));
        Assert.Equal(span.Count, span.NewestFirst().Count());
    }

    [Fact(Timeout = 10_000)]
    public void Everything_contains_every_pid()
    {
        Assert.True(PidSpan.Everything.Contains(12345));
        Assert.Empty(PidSpan.Everything.NewestFirst());
    }

    [Fact(Timeout = 120_000)]
    public async Task Exited_pids_are_skipped_only_while_the_window_holds()
    {
        // The memo of exited PIDs is only sound inside a window (no PID in it can be handed out again). Without one,
        // the scan must forget it and look at everything, or a member with a remembered PID would be missed.
        string tag = "CORRAL_TREE_ID=" + Guid.NewGuid().ToString("N");
        var counters = PidWindow.CountersBeforeSpawn();
        var psi = new ProcessStartInfo("/bin/sleep", "30");
        psi.Environment["CORRAL_TREE_ID"] = tag["CORRAL_TREE_ID=".Length..];
        using var member = Process.Start(psi)!;
        try
        {
            await Proc.WaitForAsync(() => File.ReadAllText($"/proc/{member.Id}/cmdline").StartsWith("/bin/sleep", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "sleep to exec");
            var protectedPids = new Lazy<HashSet<int>>(ProcScanner.ProtectedPids);
            var exited = new ExitedPids();
            exited.AddRange([member.Id]);

            var windowed = new TreeCriteria(null, tag, [], PidWindow.After(member.Id, counters));
            Assert.Empty(ProcScanner.FindMembers(windowed, protectedPids, checkHolders: false, stopAtFirst: false, log: null, exited));

            var unbounded = new TreeCriteria(null, tag, []);
            var found = ProcScanner.FindMembers(unbounded, protectedPids, checkHolders: false, stopAtFirst: false, log: null, exited);
            Assert.Equal(member.Id, Assert.Single(found).Pid);
            Assert.False(exited.Contains(member.Id));
        }
        finally
        {
            member.Kill();
        }
    }
}
