using System.Diagnostics;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Interop;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>
/// A uid exclusive to a tree is containment too: every process of it is the tree's, wherever it went, and nothing of
/// any other uid is touched.
/// </summary>
public sealed class UidContainmentTests
{
    /// <summary>
    /// Runs as the tree's uid: leaves the session, drops the whole environment (the tag with it) and every
    /// descriptor of the tree's pipes, records its PID and execs <paramref name="program"/> 300. Nothing but its uid
    /// ties it to the tree. The tree waits for the file <c>go</c>.
    /// </summary>
    private static string Escapee(string program = "env -i sleep") =>
        $"setsid env -i /bin/sh -c 'echo $$ > \"$1/escapee\"; exec {program} 300' sh \"$D\" </dev/null >/dev/null 2>&1 & " +
        "while [ ! -s \"$D/escapee\" ]; do sleep 0.01; done; echo ready; while [ ! -e \"$D/go\" ]; do sleep 0.01; done";

    /// <summary>Starts <paramref name="script"/> (with <c>$D</c>) as <paramref name="uid"/> and waits for its first line, <c>ready</c>.</summary>
    private static Task<ProcessTree> StartReadyAsync(string script, ContainmentMode mode, PidDir dir, int uid, bool exclusive, CancellationToken ct) =>
        ReadyTree.StartAsync(Modes.Bash(script, mode) with
        {
            User = new ProcessUser(uid, uid) { Exclusive = exclusive },
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(500) },
        }, ct);

    /// <summary><see cref="StartReadyAsync"/> for an <see cref="Escapee"/> script, and the escapee's PID.</summary>
    private static async Task<(ProcessTree Tree, int Escapee, Proc.Identity? Identity)> StartWithEscapeeAsync(
        string script, ContainmentMode mode, PidDir dir, int uid, bool exclusive, CancellationToken ct)
    {
        var tree = await StartReadyAsync(script, mode, dir, uid, exclusive, ct);
        int escapee = await Proc.ReadPidFileAsync(dir.File("escapee"), TimeSpan.FromSeconds(10));
        return (tree, escapee, Proc.Identify(escapee));
    }

    /// <summary>Unprivileged, a process cannot leave its leaf (see UserTests): this stands in for a way out it might find.</summary>
    private static void MoveToRootCgroup(int pid)
    {
        Assert.Equal(0, Internal.Io.Fd.WriteFile(CgroupHost.Instance!.MountPoint + "/cgroup.procs", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal("0::/", File.ReadLines($"/proc/{pid}/cgroup").Single(l => l.StartsWith("0::", StringComparison.Ordinal)));
    }

    public static TheoryData<ContainmentMode, bool> ModesAndExclusivity => new()
    {
        { ContainmentMode.Session, true }, { ContainmentMode.Session, false },
        { ContainmentMode.Cgroup, true }, { ContainmentMode.Cgroup, false },
    };

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(ModesAndExclusivity))]
    public async Task An_escapee_that_cleared_its_environment_and_closed_the_pipes_is_found_by_its_exclusive_uid(ContainmentMode mode, bool exclusive)
    {
        Modes.SkipUnlessUsersCanBeSwitched(mode);
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir(forAnyUser: true);
        int uid = Proc.UnusedUid();
        var (tree, escapee, identity) = await StartWithEscapeeAsync(Escapee(), mode, dir, uid, exclusive, ct);
        await using var _ = tree;
        try
        {
            await Proc.WaitForAsync(() => Proc.CommandLine(escapee) == "sleep 300", TimeSpan.FromSeconds(10), "the escapee to exec sleep");
            Assert.Empty(File.ReadAllText($"/proc/{escapee}/environ"));
            Assert.All(Directory.GetFiles($"/proc/{escapee}/fd"), fd => Assert.DoesNotContain("pipe:", Internal.Io.Fd.ReadLink(fd) ?? ""));
            if (mode == ContainmentMode.Cgroup)
                MoveToRootCgroup(escapee);

            var ledger = tree.GetProcesses();
            Assert.Contains(ledger, p => p.Pid == tree.Pid);
            if (exclusive)
                Assert.Contains(ledger, p => p.Pid == escapee && p.FoundBy == FoundBy.Uid && p.CommandLine == "sleep 300");
            else
                Assert.DoesNotContain(ledger, p => p.Pid == escapee);

            File.WriteAllText(dir.File("go"), "");
            var outcome = await tree.Completion;

            if (exclusive)
            {
                var killed = Assert.Single(outcome.Killed, k => k.Pid == escapee);
                Assert.Equal(FoundBy.Uid, killed.FoundBy);
                Assert.Equal("sleep 300", killed.CommandLine);
                Assert.False(Proc.IsAlive(escapee));
            }
            else
            {
                // Without the declaration nothing ties it to the tree: it is left alone, as Corral leaves every stranger.
                Assert.DoesNotContain(outcome.Killed, k => k.Pid == escapee);
                Assert.True(Proc.IsAlive(escapee));
            }
        }
        finally
        {
            Proc.KillIfAlive(identity);
        }
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Processes_of_any_other_uid_are_never_touched(ContainmentMode mode)
    {
        Modes.SkipUnlessUsersCanBeSwitched(mode);
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir(forAnyUser: true);
        int uid = Proc.UnusedUid(), other = Proc.UnusedUid();
        await using var tree = await StartReadyAsync(
            "sleep 300 & echo $! > \"$D/sleeper\"; echo ready; while [ ! -e \"$D/go\" ]; do sleep 0.01; done", mode, dir, uid, exclusive: true, ct);
        // On a loaded machine the background child may not have exec'd yet (it would still show bash's command line).
        int sleeper = await Proc.ReadPidFileAsync(dir.File("sleeper"), TimeSpan.FromSeconds(10));
        await Proc.WaitForAsync(() => Proc.CommandLine(sleeper) == "sleep 300", TimeSpan.FromSeconds(10), "the tree's background sleep to exec");

        // Created after the tree's child, so they are in its PID window: one of another uid (a tree of its own) and one of ours.
        await using var neighbour = ProcessTree.Start(new ProcessSpec("/bin/sleep", "300")
        {
            User = new ProcessUser(other, uid),
            Containment = ContainmentMode.Session,
        }, ct);
        using var ours = Process.Start(new ProcessStartInfo("/bin/sleep", "300"))!;
        try
        {
            Assert.DoesNotContain(tree.GetProcesses(), p => p.Pid == neighbour.Pid || p.Pid == ours.Id);
            File.WriteAllText(dir.File("go"), "");
            var outcome = await tree.Completion;

            Assert.Contains(outcome.Killed, k => k.Pid == sleeper && k.CommandLine == "sleep 300");
            Assert.DoesNotContain(outcome.Killed, k => k.Pid == neighbour.Pid || k.Pid == ours.Id);
            Assert.True(Proc.IsAlive(neighbour.Pid), "the other uid's process was hit");
            // Its exit code names the signal (128 + n) if something outside Corral's report killed it: a clue for a rare CI failure.
            Assert.True(Proc.IsAlive(ours.Id), $"Corral's own uid's process was hit (exit {(ours.WaitForExit(1000) ? ours.ExitCode : -1)}; killed: {string.Join(", ", outcome.Killed.Select(k => $"{k.Pid} {k.CommandLine} {k.FoundBy}"))})");
        }
        finally
        {
            ours.Kill();
            neighbour.Cancel();
            await neighbour.Completion;
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Outside_the_leaf_an_escapee_that_is_not_dumpable_is_still_found_by_its_exclusive_uid()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Cgroup);
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir(forAnyUser: true);
        // Executing a program it may not read makes a process non-dumpable: its /proc files then show root as owner.
        string hidden = dir.File("hidden-sleep");
        File.Copy("/bin/sleep", hidden);
        File.SetUnixFileMode(hidden, UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        int uid = Proc.UnusedUid();
        var (tree, escapee, identity) = await StartWithEscapeeAsync(Escapee("\"$1/hidden-sleep\""), ContainmentMode.Cgroup, dir, uid, exclusive: true, ct);
        await using var _ = tree;
        try
        {
            await Proc.WaitForAsync(() => Proc.CommandLine(escapee) == hidden + " 300", TimeSpan.FromSeconds(10), "the escapee to exec the unreadable sleep");
            // With fs.suid_dumpable 0 (the default) the exec made it non-dumpable; its directory still shows its uid.
            if (File.ReadAllText("/proc/sys/fs/suid_dumpable").Trim() == "0")
                Assert.Equal(0, Owner($"/proc/{escapee}/status"));
            Assert.Equal(uid, Owner($"/proc/{escapee}"));
            MoveToRootCgroup(escapee);

            Assert.Contains(tree.GetProcesses(), p => p.Pid == escapee && p.FoundBy == FoundBy.Uid);
            File.WriteAllText(dir.File("go"), "");
            var outcome = await tree.Completion;

            Assert.Equal(FoundBy.Uid, Assert.Single(outcome.Killed, k => k.Pid == escapee).FoundBy);
            Assert.False(Proc.IsAlive(escapee));
        }
        finally
        {
            Proc.KillIfAlive(identity);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Outside_the_leaf_a_process_of_another_uid_is_never_touched_even_with_the_trees_tag()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Cgroup);
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir(forAnyUser: true);
        int uid = Proc.UnusedUid(), other = Proc.UnusedUid();
        await using var tree = await StartReadyAsync("echo ready; while [ ! -e \"$D/go\" ]; do sleep 0.01; done", ContainmentMode.Cgroup, dir, uid, exclusive: true, ct);

        // Another uid's process, in the tree's PID window and outside its leaf, that copied the tree's tag.
        await using var copycat = ProcessTree.Start(new ProcessSpec("/usr/bin/env", SpawnTag(tree.TreeId), "/bin/sleep", "300")
        {
            User = new ProcessUser(other, other),
            Containment = ContainmentMode.Session,
        }, ct);
        try
        {
            await Proc.WaitForAsync(() => Proc.CommandLine(copycat.Pid) == "/bin/sleep 300", TimeSpan.FromSeconds(10), "the copycat to exec sleep");
            Assert.Contains(SpawnTag(tree.TreeId), File.ReadAllText($"/proc/{copycat.Pid}/environ").Split('\0'));

            Assert.DoesNotContain(tree.GetProcesses(), p => p.Pid == copycat.Pid);
            File.WriteAllText(dir.File("go"), "");
            var outcome = await tree.Completion;

            Assert.DoesNotContain(outcome.Killed, k => k.Pid == copycat.Pid);
            Assert.True(Proc.IsAlive(copycat.Pid), "the other uid's process was hit");
        }
        finally
        {
            copycat.Cancel();
            await copycat.Completion;
        }
    }

    [Theory(Timeout = 10_000)]
    [InlineData(1234, true)]
    [InlineData(0, true)]
    [InlineData(Internal.Io.ProcFs.UidUnknown, true)]
    [InlineData(4321, false)]
    [InlineData(-1, false)]
    public void Outside_the_leaf_only_the_trees_uid_root_or_an_unknown_uid_is_examined(long euid, bool examined)
    {
        // -1: the process is gone. Unknown: statx was refused, so the status read decides, as before the statx.
        var outside = new TreeCriteria(null, "CORRAL_TREE_ID=x", [], ExclusiveUid: 1234, ExcludedCgroup: "/corral/x");
        Assert.Equal(examined, ProcScanner.MayBeMemberOutsideLeaf(1, outside, ref euid));

        // Any other criteria are never filtered by uid: a session tree's setuid member is still found by its tag.
        long other = 4321;
        Assert.True(ProcScanner.MayBeMemberOutsideLeaf(1, new TreeCriteria(1, "CORRAL_TREE_ID=x", [], ExclusiveUid: 1234), ref other));
    }

    private static string SpawnTag(string treeId) => Internal.Spawning.SpawnRequest.TreeIdVariable + "=" + treeId;

    /// <summary>The owner of a path, as stat(1) shows it.</summary>
    private static int Owner(string path)
    {
        using var stat = Process.Start(new ProcessStartInfo("stat", ["-c", "%u", path]) { RedirectStandardOutput = true })!;
        string text = stat.StandardOutput.ReadToEnd();
        stat.WaitForExit();
        return int.Parse(text.Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact(Timeout = 120_000)]
    public async Task Leftovers_of_a_crashed_owner_are_found_by_the_exclusive_uid_too()
    {
        Modes.SkipUnlessUsersCanBeSwitched();
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir(forAnyUser: true);
        int uid = Proc.UnusedUid();
        // Detached: the owner lets the escapee run, as a crash would.
        var result = await ProcessTree.RunAsync(Modes.Bash(
            "setsid env -i /bin/sh -c 'echo $$ > \"$1/escapee\"; exec env -i sleep 300' sh \"$D\" </dev/null >/dev/null 2>&1 & " +
            "while [ ! -s \"$D/escapee\" ]; do sleep 0.01; done", ContainmentMode.Session) with
        {
            User = new ProcessUser(uid, uid) { Exclusive = true },
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Linger = LingerPolicy.Detach,
        }, ct);
        int escapee = await Proc.ReadPidFileAsync(dir.File("escapee"), TimeSpan.FromSeconds(10));
        var identity = Proc.Identify(escapee);
        try
        {
            Assert.True(Proc.IsAlive(escapee));
            Assert.Empty(await ProcessTree.KillLeftoversAsync(result.Outcome.TreeId, null));

            var killed = await ProcessTree.KillLeftoversAsync(result.Outcome.TreeId, null, exclusiveUid: uid);

            Assert.Equal(FoundBy.Uid, Assert.Single(killed, k => k.Pid == escapee).FoundBy);
            Assert.False(Proc.IsAlive(escapee));
            await Assert.ThrowsAsync<ArgumentException>(() => ProcessTree.KillLeftoversAsync(result.Outcome.TreeId, null, exclusiveUid: 0));
        }
        finally
        {
            Proc.KillIfAlive(identity);
        }
    }
}
