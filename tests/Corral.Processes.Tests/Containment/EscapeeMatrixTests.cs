using System.Diagnostics;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>
/// Each case: a child writes 1 MiB and a final line, leaves an escapee behind that sleeps 300 s while holding an
/// output pipe, and exits. The call must return within a generous bound of the child's exit with every byte, and
/// afterwards nothing of the tree may be alive.
/// </summary>
public class EscapeeMatrixTests
{
    // Records the escapee's PID ($$ survives exec) so the test can check it through /proc afterwards.
    private const string Record = "echo $$ >> \"$D/pids\"";

    public static TheoryData<string, ContainmentMode> Cases()
    {
        var data = new TheoryData<string, ContainmentMode>();
        foreach (var name in Escapees.Keys)
        {
            data.Add(name, ContainmentMode.Cgroup);
            data.Add(name, ContainmentMode.Session);
        }

        return data;
    }

    private static readonly Dictionary<string, (string Script, int Expected)> Escapees = new()
    {
        ["setsid grandchild holding stdout"] =
            ($"setsid sh -c '{Record}; exec sleep 300' &", 1),
        ["setsid grandchild holding only stderr"] =
            ($"setsid sh -c '{Record}; exec sleep 300' >/dev/null &", 1),
        ["double-fork orphan"] =
            ($"( ( sh -c '{Record}; exec sleep 300' & ) & )", 1),
        ["setpgid into a new group"] =
            ($"set -m; sh -c '{Record}; exec sleep 300' &", 1),
        ["grandchild ignoring SIGTERM"] =
            ($"setsid sh -c 'trap \"\" TERM; {Record}; exec sleep 300' &", 1),
        ["SIGSTOPped grandchild"] =
            ($"setsid sh -c '{Record}; kill -STOP $$; exec sleep 300' &", 1),
        ["respawner that forks a replacement when signalled"] =
            ($"setsid sh -c 'trap \"sh -c \\\"echo \\\\$\\\\$ >> $D/pids; exec sleep 300\\\" &\" TERM; {Record}; while :; do sleep 0.05; done' &", 1),
        ["pipe duplicated to a high fd, original closed"] =
            ($"setsid bash -c 'exec 250>&1 >/dev/null 2>&1; {Record}; exec sleep 300' &", 1),
        ["100-process tree, half escaped with setsid"] =
            ($"for i in $(seq 50); do sh -c '{Record}; exec sleep 300' & setsid sh -c '{Record}; exec sleep 300' & done", 100),
        ["escapee with a cleared environment"] =
            ($"env -i D=\"$D\" /usr/bin/setsid /bin/sh -c '{Record}; exec sleep 300' &", 1),
    };

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Cases))]
    public async Task Returns_on_child_exit_with_every_byte_and_leaves_no_survivor(string name, ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        var (escape, expected) = Escapees[name];

        // The child waits until its escapees have recorded themselves, then writes 1 MiB and a result line, then exits.
        string script = $$"""
            {{escape}}
            while [ "$(wc -l < "$D/pids" 2>/dev/null || echo 0)" -lt {{expected}} ]; do sleep 0.01; done
            head -c 1048576 /dev/zero | tr '\0' 'x'
            echo
            echo RESULT_LINE
            exit 7
            """;
        var spec = Modes.Bash(script, mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(500) },
        };

        var clock = Stopwatch.StartNew();
        var result = await ProcessTree.RunAsync(spec, TestContext.Current.CancellationToken);
        clock.Stop();

        var outcome = result.Outcome;
        var pids = dir.AllPids();
        Assert.True(pids.Count >= expected, $"expected {expected} escapees, {pids.Count} recorded");
        Assert.Equal(ExitReason.Exited, outcome.Reason);
        Assert.Equal(7, outcome.ExitCode);

        // Generous bounds (the escapees would hold the pipe for 300 s): what counts is the time from the child's
        // exit; the whole run also includes starting up to 100 escapees and writing 1 MiB on a loaded machine.
        Assert.True(outcome.DrainAfterExit < TimeSpan.FromSeconds(2.5), $"drain after exit took {outcome.DrainAfterExit}");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");

        string stdout = result.StandardOutput;
        Assert.Equal((1 << 20) + "\nRESULT_LINE\n".Length, stdout.Length);
        Assert.EndsWith("\nRESULT_LINE\n", stdout);
        Assert.Equal(stdout.Length, outcome.StandardOutputBytes);
        Assert.False(outcome.HolderSurvived);

        foreach (int pid in pids)
            Assert.False(Proc.IsAlive(pid), $"escapee {pid} survived ({Proc.State(pid)})");
        Assert.NotEmpty(outcome.Killed);
        Assert.All(outcome.Killed, k => Assert.NotEqual(Environment.ProcessId, k.Pid));
        if (mode == ContainmentMode.Cgroup)
        {
            Assert.All(outcome.Killed, k => Assert.Equal(FoundBy.Cgroup, k.FoundBy));
            Assert.False(Directory.Exists(Path.Combine(Internal.Containment.CgroupHost.Instance!.ParentPath, outcome.TreeId)), "leaf cgroup left behind");
        }
    }
}
