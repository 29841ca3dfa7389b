using Corral.Processes.Internal.Containment;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>The live ledger: the tree's processes right now, with the facts an operator asks for first.</summary>
public sealed class ProcessLedgerTests
{
    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task The_ledger_lists_every_live_process_of_the_tree_and_how_it_was_found(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir();
        await using var tree = await ReadyTree.StartAsync(Modes.Bash(
            "sleep 300 & echo $! > \"$D/a\"; setsid sleep 301 & echo $! > \"$D/b\"; " +
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo ready; while [ ! -e \"$D/go\" ]; do sleep 0.01; done", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
        }, ct);
        int a = await Proc.ReadPidFileAsync(dir.File("a"), TimeSpan.FromSeconds(10));
        int b = await Proc.ReadPidFileAsync(dir.File("b"), TimeSpan.FromSeconds(10));
        await Proc.WaitForAsync(() => Proc.CommandLine(a) == "sleep 300" && Proc.CommandLine(b) == "sleep 301", TimeSpan.FromSeconds(10), "both sleeps");

        var ledger = tree.GetProcesses();

        var child = Assert.Single(ledger, p => p.Pid == tree.Pid);
        Assert.Equal(Environment.ProcessId, child.ParentPid);
        Assert.StartsWith("/bin/bash -c sleep 300 &", child.CommandLine);
        Assert.True(child.CpuTime > TimeSpan.Zero, "the loop took CPU time");
        Assert.True(child.RssBytes > 0);
        var first = Assert.Single(ledger, p => p.Pid == a);
        var second = Assert.Single(ledger, p => p.Pid == b);
        Assert.Equal((tree.Pid, "sleep 300", ProcessState.Sleeping), (first.ParentPid, first.CommandLine, first.State));
        Assert.Equal((tree.Pid, "sleep 301", ProcessState.Sleeping), (second.ParentPid, second.CommandLine, second.State));
        if (mode == ContainmentMode.Cgroup)
        {
            Assert.All(ledger, p => Assert.Equal(FoundBy.Cgroup, p.FoundBy));
        }
        else
        {
            Assert.Equal(FoundBy.ProcessGroup, first.FoundBy);
            Assert.Equal(FoundBy.EnvironmentTag, second.FoundBy);
        }

        // Nothing else: no thread, no stranger (a short sleep of the wait loop may be caught too, even before it execs).
        Assert.All(ledger, p => Assert.True(p.Pid == tree.Pid || p.ParentPid == tree.Pid, $"{p.Pid} {p.CommandLine}"));

        File.WriteAllText(dir.File("go"), "");
        await tree.Completion;
        Assert.Empty(tree.GetProcesses());
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task A_multithreaded_member_is_one_process_in_the_ledger(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        Assert.SkipUnless(File.Exists("/usr/bin/python3"), "no /usr/bin/python3 to start threads with");
        var ct = TestContext.Current.CancellationToken;
        // The threads' ids come after the child's PID, in its PID window, where session mode probes ids directly.
        await using var tree = await ReadyTree.StartAsync(new ProcessSpec("/usr/bin/python3", "-c",
            "import threading, time\nfor _ in range(4): threading.Thread(target=time.sleep, args=(300,), daemon=True).start()\nprint('ready', flush=True)\ntime.sleep(300)")
        {
            Containment = mode,
        }, ct);
        Assert.Equal(5, Directory.GetDirectories($"/proc/{tree.Pid}/task").Length);

        var ledger = tree.GetProcesses();

        Assert.Equal(tree.Pid, Assert.Single(ledger).Pid);
    }

    [Theory]
    [InlineData('R', ProcessState.Running)]
    [InlineData('S', ProcessState.Sleeping)]
    [InlineData('D', ProcessState.UninterruptibleSleep)]
    [InlineData('T', ProcessState.Stopped)]
    [InlineData('t', ProcessState.Traced)]
    [InlineData('I', ProcessState.Idle)]
    [InlineData('W', ProcessState.Other)]
    public void States_are_named_from_the_stat_letter(char letter, ProcessState expected) =>
        Assert.Equal(expected, ProcessLedger.State(letter));

    [Fact]
    public void Stat_fields_are_read_past_a_command_name_with_spaces_and_parentheses()
    {
        var line = "4242 (a (b) ) c) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 31 0 0 20 0 1 0 12345 8228864 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"u8;

        Assert.Equal(new ProcessLedger.Stat('S', 17, 250, 31, 321), ProcessLedger.ParseStat(line));
        Assert.Null(ProcessLedger.ParseStat("4242 (truncated) S 1 2"u8));
        byte[] buffer = new byte[64];
        Assert.True(ProcessLedger.ReadStat(Environment.ProcessId, ref buffer) is { RssPages: > 0 });
    }
}
