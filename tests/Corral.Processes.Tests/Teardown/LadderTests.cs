using System.Diagnostics;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Teardown;

public class LadderTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Timeout_ends_a_SIGTERM_ignoring_tree_by_SIGKILL_within_grace_plus_a_bound(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        var grace = TimeSpan.FromMilliseconds(700);
        var spec = Modes.Bash("trap '' TERM; setsid sh -c 'trap \"\" TERM; echo $$ >> \"$D/pids\"; exec sleep 300' & echo $$ >> \"$D/pids\"; echo partial; exec sleep 300", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Timeout = TimeSpan.FromMilliseconds(500),
            Teardown = new TeardownOptions { Grace = grace },
        };

        var clock = Stopwatch.StartNew();
        var result = await ProcessTree.RunAsync(spec, Ct);
        var outcome = result.Outcome;
        Assert.Equal(ExitReason.TimedOut, outcome.Reason);
        Assert.Equal(9, outcome.Signal);
        Assert.Null(outcome.ExitCode);
        Assert.Equal(124, outcome.ShellExitCode);
        Assert.Equal("partial\n", result.StandardOutput);
        Assert.True(clock.Elapsed < TimeSpan.FromMilliseconds(500) + grace + TimeSpan.FromSeconds(2), $"took {clock.Elapsed}");
        // The grace was honoured (timers may fire a millisecond early), and SIGKILL (signal 9 above) ended it.
        Assert.True(outcome.TeardownDuration >= grace - TimeSpan.FromMilliseconds(20), $"teardown {outcome.TeardownDuration} shorter than the grace");
        Assert.Equal(2, dir.AllPids().Count);
        Assert.All(dir.AllPids(), pid => Assert.False(Proc.IsAlive(pid)));
        Assert.Contains(outcome.Killed, k => k.Pid == outcome.Pid);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Cancellation_token_runs_the_ladder_and_a_cooperative_tree_ends_on_SIGTERM(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        var spec = Modes.Bash("setsid sh -c 'echo $$ >> \"$D/pids\"; exec sleep 300' & trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.05; done", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromSeconds(20) },
        };
        await using var tree = ProcessTree.Start(spec, cts.Token);
        await Proc.WaitForAsync(() => dir.AllPids().Count == 1, TimeSpan.FromSeconds(10), "the escapee to start");

        var clock = Stopwatch.StartNew();
        cts.Cancel();
        var outcome = await tree.Completion;
        Assert.Equal(ExitReason.Canceled, outcome.Reason);
        Assert.Equal(42, outcome.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"SIGTERM should end it well before the 20 s grace, took {clock.Elapsed}");
        Assert.False(Proc.IsAlive(dir.AllPids()[0]));
    }

    [Fact(Timeout = 120_000)]
    public async Task Cancel_can_forward_SIGINT_as_the_first_signal()
    {
        await using var tree = ProcessTree.Start(new ProcessSpec("/bin/sleep", "300"), Ct);
        tree.Cancel(StopSignal.Interrupt);
        var outcome = await tree.Completion;
        Assert.Equal(ExitReason.Canceled, outcome.Reason);
        Assert.Equal(2, outcome.Signal);
        Assert.Equal(130, outcome.ShellExitCode);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Cancel_with_Kill_skips_the_stdin_grace_and_the_signal_grace_and_kills_an_escapee_at_once(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        var spec = Modes.Bash("trap '' TERM; setsid sh -c 'trap \"\" TERM; echo $$ >> \"$D/pids\"; exec sleep 300' & echo $$ >> \"$D/pids\"; cat", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            StandardInput = InputSource.Pipe,
            Teardown = new TeardownOptions { CloseInputGrace = TimeSpan.FromSeconds(30), Grace = TimeSpan.FromSeconds(30) },
        };
        await using var tree = ProcessTree.Start(spec, Ct);
        await Proc.WaitForAsync(() => dir.AllPids().Count == 2, TimeSpan.FromSeconds(10), "the child and the escapee to start");

        tree.Cancel(StopSignal.Kill);
        var outcome = await tree.Completion.WaitAsync(TimeSpan.FromSeconds(20), Ct);
        Assert.Equal(ExitReason.Canceled, outcome.Reason);
        Assert.Equal(9, outcome.Signal);
        Assert.True(outcome.TeardownDuration < TimeSpan.FromSeconds(10), $"teardown took {outcome.TeardownDuration}: a grace was waited for");
        Assert.All(dir.AllPids(), pid => Assert.False(Proc.IsAlive(pid)));
    }

    [Fact(Timeout = 120_000)]
    public async Task Closing_stdin_first_lets_a_well_behaved_child_exit_without_a_signal()
    {
        var spec = new ProcessSpec("/bin/sh", "-c", "trap 'exit 99' TERM; cat; echo eof-seen") with
        {
            StandardInput = InputSource.Pipe,
            Teardown = new TeardownOptions { CloseInputGrace = TimeSpan.FromSeconds(10), Grace = TimeSpan.FromSeconds(10) },
        };
        await using var tree = ProcessTree.Start(spec, Ct);
        var clock = Stopwatch.StartNew();
        tree.Cancel();
        var outcome = await tree.Completion;
        Assert.Equal(0, outcome.ExitCode);
        Assert.Empty(outcome.Killed);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact(Timeout = 120_000)]
    public async Task Cancel_is_idempotent_and_dispose_finishes_a_running_tree()
    {
        var tree = ProcessTree.Start(new ProcessSpec("/bin/sleep", "300"), Ct);
        tree.Cancel();
        tree.Cancel(StopSignal.Interrupt);
        await tree.DisposeAsync();
        Assert.Equal(15, (await tree.Completion).Signal);

        var other = ProcessTree.Start(new ProcessSpec("/bin/sleep", "300"), Ct);
        await other.DisposeAsync();
        Assert.False(Proc.IsAlive(other.Pid));
        Assert.Equal(ExitReason.Canceled, (await other.Completion).Reason);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Linger_wait_keeps_reading_until_the_tree_is_empty(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        var spec = Modes.Bash("setsid sh -c 'sleep 0.3; echo late-from-escapee' & echo early", mode) with { Linger = LingerPolicy.Wait };
        var result = await ProcessTree.RunAsync(spec, Ct);
        Assert.Equal("early\nlate-from-escapee\n", result.StandardOutput);
        Assert.Empty(result.Outcome.Killed);
        Assert.False(result.Outcome.HolderSurvived);
        Assert.True(result.Outcome.DrainAfterExit >= TimeSpan.FromMilliseconds(250));
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Linger_wait_kills_what_remains_at_the_deadline(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        var spec = Modes.Bash("setsid sh -c 'echo $$ >> \"$D/pids\"; exec sleep 300' & while [ ! -s \"$D/pids\" ]; do sleep 0.01; done", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Linger = LingerPolicy.Wait,
            LingerTimeout = TimeSpan.FromMilliseconds(300),
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(300) },
        };
        var result = await ProcessTree.RunAsync(spec, Ct);
        Assert.Single(result.Outcome.Killed);
        Assert.False(Proc.IsAlive(dir.AllPids()[0]));
        Assert.InRange(result.Outcome.DrainAfterExit, TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(3));
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Linger_detach_leaves_the_escapee_running_and_returns_at_once(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        var spec = Modes.Bash("setsid sh -c 'echo $$ >> \"$D/pids\"; exec sleep 300' & while [ ! -s \"$D/pids\" ]; do sleep 0.01; done; echo result", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Linger = LingerPolicy.Detach,
        };
        var result = await ProcessTree.RunAsync(spec, Ct);
        int escapee = dir.AllPids()[0];
        var escapeeIdentity = Proc.Identify(escapee);
        string? leaf = mode == ContainmentMode.Cgroup ? Path.Combine(Internal.Containment.CgroupHost.Instance!.ParentPath, result.Outcome.TreeId) : null;
        try
        {
            Assert.Equal("result\n", result.StandardOutput);
            Assert.Empty(result.Outcome.Killed);
            Assert.True(result.Outcome.HolderSurvived);
            Assert.True(Proc.IsAlive(escapee));
            Assert.True(result.Outcome.DrainAfterExit < TimeSpan.FromSeconds(1));
            if (leaf is not null)
                Assert.True(Directory.Exists(leaf), "the leaf still holds the detached escapee");
        }
        finally
        {
            // Detached trees are the caller's to end: here, the escapee ends on its own (as far as Corral knows).
            Proc.KillIfAlive(escapeeIdentity);
        }

        await Proc.WaitForAsync(() => !Proc.IsAlive(escapee), TimeSpan.FromSeconds(5), "the escapee to be gone");
        if (leaf is not null)
            await Proc.WaitForAsync(() => !Directory.Exists(leaf), TimeSpan.FromSeconds(5), "the emptied leaf to be removed");
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task KillLeftovers_finds_a_crashed_owners_tree_by_its_identity(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        var result = await ProcessTree.RunAsync(Modes.Bash("setsid sh -c 'echo $$ >> \"$D/pids\"; exec sleep 300' & while [ ! -s \"$D/pids\" ]; do sleep 0.01; done", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Linger = LingerPolicy.Detach,
        }, Ct);
        string? cgroup = mode == ContainmentMode.Cgroup ? Path.Combine(Internal.Containment.CgroupHost.Instance!.ParentPath, result.Outcome.TreeId) : null;

        // Another tree's id finds nothing.
        Assert.Empty(await ProcessTree.KillLeftoversAsync(Guid.NewGuid().ToString("N"), null));
        Assert.True(Proc.IsAlive(dir.AllPids()[0]));

        var killed = await ProcessTree.KillLeftoversAsync(result.Outcome.TreeId, cgroup);
        Assert.Contains(killed, k => k.Pid == dir.AllPids()[0]);
        Assert.False(Proc.IsAlive(dir.AllPids()[0]));
        if (cgroup is not null)
            Assert.False(Directory.Exists(cgroup));
        await Assert.ThrowsAsync<ArgumentException>(() => ProcessTree.KillLeftoversAsync("not-a-tree-id", null));
    }
    [Fact(Timeout = 120_000)]
    public async Task A_process_recorded_after_it_exited_is_reported_by_its_name()
    {
        // A zombie has no command line any more (it is read from the process's memory), but its name survives
        // until it is reaped: the report shows "[name]" rather than nothing.
        // It exits after the shell has exec'd into a sleep that never reaps it (a shell still running would reap it).
        await using var tree = ProcessTree.Start(Modes.Bash("sleep 1 & echo $!; exec sleep 300", ContainmentMode.Session), Ct);
        await using var lines = tree.ReadLinesAsync(Ct).GetAsyncEnumerator(Ct);
        Assert.True(await lines.MoveNextAsync());
        int zombie = int.Parse(lines.Current.Text, System.Globalization.CultureInfo.InvariantCulture);
        await Proc.WaitForAsync(() => Proc.State(zombie) == 'Z', TimeSpan.FromSeconds(10), "the sleep to exit");

        var log = new Internal.Teardown.KillLog();
        log.Record(zombie, FoundBy.ProcessGroup);
        log.Record(zombie, FoundBy.EnvironmentTag);

        var entry = Assert.Single(log.Snapshot());
        Assert.Equal(new KilledProcess(zombie, "[sleep]", FoundBy.ProcessGroup), entry);
    }
}
