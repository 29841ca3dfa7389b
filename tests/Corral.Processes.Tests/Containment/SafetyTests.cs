using System.Diagnostics;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Teardown;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>Corral never signals a process outside the tree it owns.</summary>
public class SafetyTests
{
    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task A_process_holding_only_the_read_end_is_left_alone(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        await using var tree = ProcessTree.Start(Modes.Bash(
            "setsid sleep 300 & echo started; while [ ! -e \"$D/go\" ]; do sleep 0.01; done", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(300) },
        }, TestContext.Current.CancellationToken);

        // A bystander outside the tree opens the tree's stdout pipe for reading only.
        var readEnd = $"/proc/{tree.Pid}/fd/1";
        using var bystander = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", $"exec 3<{readEnd}; echo ready; exec sleep 300"])
        {
            RedirectStandardOutput = true,
        })!;
        Assert.Equal("ready", await bystander.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken));

        File.WriteAllText(dir.File("go"), "");
        var outcome = await tree.Completion;
        try
        {
            Assert.DoesNotContain(outcome.Killed, k => k.Pid == bystander.Id);
            Assert.True(Proc.IsAlive(bystander.Id), "the read-end holder was signalled");
            Assert.NotEmpty(outcome.Killed);
        }
        finally
        {
            bystander.Kill();
        }
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Our_own_process_holding_the_write_end_is_never_signalled(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        // Once the target runs (in cgroup mode the join shim briefly points fd 1 elsewhere), this test process,
        // the tree's parent, opens the tree's stdout for writing: it is now a holder of the write end too.
        await using var tree = await ReadyTree.UntilGoAsync(dir, mode);
        using var writeEnd = new FileStream($"/proc/{tree.Pid}/fd/1", FileMode.Open, FileAccess.Write);
        Assert.Contains(PipeHolders.Find(tree.Pid), h => h.Pid == Environment.ProcessId && h.Stream == OutputStream.StandardOutput);
        ReadyTree.Go(dir);
        var outcome = await tree.Completion;

        Assert.DoesNotContain(outcome.Killed, k => k.Pid == Environment.ProcessId);
        Assert.True(outcome.HolderSurvived, "we still hold the pipe, so EOF cannot come");
        Assert.True(outcome.DrainAfterExit < TimeSpan.FromSeconds(3));
    }

    [Fact]
    public void Ourselves_and_every_ancestor_are_protected()
    {
        var protectedPids = ProcScanner.ProtectedPids();
        Assert.Contains(Environment.ProcessId, protectedPids);
        Assert.Contains(1, protectedPids);
        byte[] buffer = new byte[512];
        int parent = ProcScanner.ReadStat(Environment.ProcessId, ref buffer)!.Value.ParentPid;
        Assert.Contains(parent, protectedPids);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_pid_that_no_longer_matches_is_not_signalled()
    {
        // Stand-in for a recycled PID: the scan saw a member, but by the time of the signal the PID is
        // an unrelated process. The signal path re-checks membership after opening the pidfd.
        using var unrelated = Process.Start(new ProcessStartInfo("/bin/sleep", "300"))!;
        var criteria = new TreeCriteria(SessionId: null, TreeTag: "CORRAL_TREE_ID=" + Guid.NewGuid().ToString("N"), PipeLinks: ["pipe:[1]"]);
        var tree = new SessionTree(criteria);
        var log = new KillLog();

        await tree.SignalAllAsync(9, log);
        Assert.Empty(log.Snapshot());
        Assert.False(await Proc.EventuallyAsync(() => !Proc.IsAlive(unrelated.Id), TimeSpan.FromMilliseconds(300)));
        Assert.False(tree.SignalIfMember(unrelated.Id));
        Assert.True(Proc.IsAlive(unrelated.Id));
        unrelated.Kill();
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Tearing_down_one_tree_leaves_another_running_and_intact(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        using var dirA = new PidDir();
        using var dirB = new PidDir();
        string script = "setsid sh -c 'echo $$ >> \"$D/pids\"; exec sleep 300' & echo $$ >> \"$D/pids\"; while :; do echo tick; sleep 0.05; done";
        var a = ProcessTree.Start(Modes.Bash(script, mode) with { Environment = new Dictionary<string, string?> { ["D"] = dirA.Path } }, TestContext.Current.CancellationToken);
        await using var b = ProcessTree.Start(Modes.Bash(script, mode) with { Environment = new Dictionary<string, string?> { ["D"] = dirB.Path } }, TestContext.Current.CancellationToken);
        await Proc.WaitForAsync(() => dirA.AllPids().Count == 2 && dirB.AllPids().Count == 2, TimeSpan.FromSeconds(10), "both trees to start");

        a.Cancel();
        var outcomeA = await a.Completion;
        Assert.Equal(ExitReason.Canceled, outcomeA.Reason);
        Assert.All(dirA.AllPids(), pid => Assert.False(Proc.IsAlive(pid)));
        Assert.All(dirB.AllPids(), pid => Assert.True(Proc.IsAlive(pid), $"tree B process {pid} was hit"));
        Assert.DoesNotContain(outcomeA.Killed, k => dirB.AllPids().Contains(k.Pid));

        // Tree B still produces output and finishes normally on its own cancel.
        long before = 0;
        await foreach (var line in b.ReadLinesAsync(TestContext.Current.CancellationToken))
        {
            if (++before >= 3)
                break;
        }

        b.Cancel();
        var outcomeB = await b.Completion;
        Assert.Equal(ExitReason.Canceled, outcomeB.Reason);
        Assert.All(dirB.AllPids(), pid => Assert.False(Proc.IsAlive(pid)));
    }
}
