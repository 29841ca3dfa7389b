using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Teardown;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>One pass for several trees finds, for each, exactly what the tree's own scan finds.</summary>
public class SharedScanTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task A_shared_pass_gives_every_tree_the_members_its_own_scan_finds()
    {
        // Three trees, each with a member of every kind: in the group, in its own session with the tag, and in its
        // own session without the environment but holding the tree's stdout (a pipe holder).
        using var dir = new PidDir();
        var trees = new List<ProcessTree>();
        try
        {
            for (int i = 0; i < 3; i++)
            {
                trees.Add(ProcessTree.Start(Modes.Bash(
                    $"sleep 300 & echo $! >> \"$D/{i}\"; setsid sleep 300 & echo $! >> \"$D/{i}\"; env -i setsid sleep 300 & echo $! >> \"$D/{i}\"; echo ready; exec sleep 300",
                    ContainmentMode.Session) with
                {
                    Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
                }, Ct));
            }

            foreach (var tree in trees)
            {
                await using var lines = tree.ReadLinesAsync(Ct).GetAsyncEnumerator(Ct);
                Assert.True(await lines.MoveNextAsync() && lines.Current.Text == "ready");
            }

            await Proc.WaitForAsync(() => dir.AllPids().Count == 9 && dir.AllPids().All(p => Comm(p) == "sleep"), TimeSpan.FromSeconds(10), "every sleep to run");
            var criteria = trees.Select(t => new TreeCriteria(t.Pid, "CORRAL_TREE_ID=" + t.TreeId,
                [Internal.Io.Fd.ReadLink($"/proc/{t.Pid}/fd/1")!, Internal.Io.Fd.ReadLink($"/proc/{t.Pid}/fd/2")!])).ToList();
            var protectedPids = new Lazy<HashSet<int>>(ProcScanner.ProtectedPids);

            var alone = criteria.Select(c => Sorted(ProcScanner.FindMembers(c, protectedPids, checkHolders: true, stopAtFirst: false, log: null))).ToList();
            var logs = criteria.Select(_ => new KillLog()).ToList();
            var shared = SharedScan.FindAll(criteria.Select((c, i) => new SharedScan.Request(c, protectedPids, checkHolders: true, logs[i], exited: null)).ToList());
            try
            {
                for (int i = 0; i < trees.Count; i++)
                {
                    var expected = File.ReadAllLines(dir.File(i.ToString(System.Globalization.CultureInfo.InvariantCulture))).Select(int.Parse).ToList();
                    Assert.Equal(
                        new[] { (trees[i].Pid, FoundBy.ProcessGroup), (expected[0], FoundBy.ProcessGroup), (expected[1], FoundBy.EnvironmentTag), (expected[2], FoundBy.PipeHolder) }.OrderBy(m => m.Item1),
                        alone[i]);
                    Assert.Equal(alone[i], Sorted(shared[i]));

                    // Each member comes with a pidfd for that very process, and is in the tree's log only.
                    Assert.All(shared[i], m => Assert.Equal(m.Pid, PidfdTarget(m.Pidfd)));
                    Assert.Equal(alone[i].Select(m => m.Pid), logs[i].Snapshot().Select(k => k.Pid));
                    Assert.All(logs[i].Snapshot(), k => Assert.Equal("sleep 300", k.CommandLine));
                }
            }
            finally
            {
                foreach (var members in shared)
                    ProcScanner.Close(members);
            }
        }
        finally
        {
            foreach (var tree in trees)
                await tree.DisposeAsync();
        }

        Assert.All(dir.AllPids(), p => Assert.False(Proc.IsAlive(p)));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_shared_pass_finds_exclusive_uids_and_leaves_out_excluded_cgroups_as_each_trees_own_scan_does()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Cgroup);
        var ct = TestContext.Current.CancellationToken;
        using var dir = new PidDir(forAnyUser: true);
        // Each tree: a member in its group, and an escapee with neither session, environment nor pipes.
        string script = "sleep 300 & setsid env -i /bin/sh -c 'echo $$ > \"$1\"; exec env -i sleep 300' sh \"$D/$N\" </dev/null >/dev/null 2>&1 & " +
                        "while [ ! -s \"$D/$N\" ]; do sleep 0.01; done; echo ready; exec sleep 300";
        int uid1 = Proc.UnusedUid(), uid2 = Proc.UnusedUid();
        ProcessSpec Tree(int uid, string n, ContainmentMode mode) => Modes.Bash(script, mode) with
        {
            User = new ProcessUser(uid, uid) { Exclusive = true },
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path, ["N"] = n },
        };
        await using var session = ProcessTree.Start(Tree(uid1, "1", ContainmentMode.Session), ct);
        await using var cgroup = ProcessTree.Start(Tree(uid2, "2", ContainmentMode.Cgroup), ct);
        foreach (var tree in new[] { session, cgroup })
        {
            await using var lines = tree.ReadLinesAsync(ct).GetAsyncEnumerator(ct);
            Assert.True(await lines.MoveNextAsync() && lines.Current.Text == "ready");
        }

        int escapee1 = await Proc.ReadPidFileAsync(dir.File("1"), TimeSpan.FromSeconds(10));
        int escapee2 = await Proc.ReadPidFileAsync(dir.File("2"), TimeSpan.FromSeconds(10));
        var identities = new[] { Proc.Identify(escapee1), Proc.Identify(escapee2) };
        try
        {
            // The cgroup tree's escapee gets out of the leaf; its other processes stay in it.
            Assert.Equal(0, Internal.Io.Fd.WriteFile(CgroupHost.Instance!.MountPoint + "/cgroup.procs", escapee2.ToString(System.Globalization.CultureInfo.InvariantCulture)));
            string leaf = "/" + Path.GetRelativePath(CgroupHost.Instance.MountPoint, cgroup.CgroupPath!);
            var criteria = new List<TreeCriteria>
            {
                new(session.Pid, "CORRAL_TREE_ID=" + session.TreeId, [Internal.Io.Fd.ReadLink($"/proc/{session.Pid}/fd/1")!], ExclusiveUid: uid1),
                new(null, "CORRAL_TREE_ID=" + cgroup.TreeId, [], ExclusiveUid: uid2, ExcludedCgroup: leaf),
            };
            var protectedPids = new Lazy<HashSet<int>>(ProcScanner.ProtectedPids);

            var alone = criteria.Select(c => Sorted(ProcScanner.FindMembers(c, protectedPids, checkHolders: true, stopAtFirst: false, log: null))).ToList();
            var shared = SharedScan.FindAll(criteria.Select(c => new SharedScan.Request(c, protectedPids, checkHolders: true, log: null, exited: null)).ToList());

            Assert.Contains((escapee1, FoundBy.Uid), alone[0]);
            Assert.Contains((session.Pid, FoundBy.ProcessGroup), alone[0]);
            Assert.Equal([(escapee2, FoundBy.Uid)], alone[1]);
            Assert.Equal(alone[0], Sorted(shared[0]));
            Assert.Equal(alone[1], Sorted(shared[1]));
        }
        finally
        {
            foreach (var identity in identities)
                Proc.KillIfAlive(identity);
        }
    }

    private static List<(int Pid, FoundBy FoundBy)> Sorted(IEnumerable<(int Pid, FoundBy FoundBy)> members) => members.OrderBy(m => m.Pid).ToList();

    private static List<(int Pid, FoundBy FoundBy)> Sorted(IEnumerable<Member> members) => Sorted(members.Select(m => (m.Pid, m.FoundBy)));

    private static string Comm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>The PID a pidfd of ours names, from its fdinfo.</summary>
    private static int PidfdTarget(int pidfd)
    {
        string line = File.ReadAllLines($"/proc/self/fdinfo/{pidfd}").Single(l => l.StartsWith("Pid:", StringComparison.Ordinal));
        return int.Parse(line[4..].Trim(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
