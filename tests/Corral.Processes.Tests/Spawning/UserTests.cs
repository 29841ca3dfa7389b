using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Spawning;
using Corral.Processes.Interop;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Spawning;

/// <summary>A tree may run as another user: groups, gid and uid are set in the child before exec, then no_new_privs.</summary>
public sealed class UserTests
{

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task The_tree_runs_as_the_given_uid_gid_and_groups_with_no_new_privs(ContainmentMode mode)
    {
        Modes.SkipUnlessUsersCanBeSwitched(mode);
        int uid = Proc.UnusedUid();
        var user = new ProcessUser(uid, uid + 1) { SupplementaryGroups = [uid + 2, uid + 3] };
        await using var tree = await ReadyTree.StartAsync(Modes.Bash("echo ready; exec sleep 300", mode) with { User = user }, TestContext.Current.CancellationToken);

        // Seen from outside, in the running child's /proc/PID/status.
        Assert.Equal([uid, uid, uid, uid], Proc.Uids(tree.Pid)!);
        Assert.Equal($"{uid + 1}\t{uid + 1}\t{uid + 1}\t{uid + 1}", Proc.StatusField(tree.Pid, "Gid:"));
        Assert.Equal($"{uid + 2} {uid + 3}", Proc.StatusField(tree.Pid, "Groups:"));
        Assert.Equal("1", Proc.StatusField(tree.Pid, "NoNewPrivs:"));
        Assert.Equal("0000000000000000", Proc.StatusField(tree.Pid, "CapEff:"));

        tree.Cancel();
        var outcome = await tree.Completion;
        Assert.Equal(ExitReason.Canceled, outcome.Reason);
    }

    [Fact(Timeout = 120_000)]
    public async Task Without_supplementary_groups_the_callers_groups_are_dropped()
    {
        Modes.SkipUnlessUsersCanBeSwitched();
        int uid = Proc.UnusedUid();
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "grep -E '^(Groups|Uid):' /proc/self/status")
        {
            User = new ProcessUser(uid, uid),
            Containment = ContainmentMode.Session,
        }, TestContext.Current.CancellationToken);

        Assert.Equal(0, result.Outcome.ExitCode);
        Assert.Contains($"Uid:\t{uid}\t{uid}\t{uid}\t{uid}", result.StandardOutput);
        Assert.Matches(@"(?m)^Groups:\s*$", result.StandardOutput);
    }

    [Fact(Timeout = 120_000)]
    public async Task The_working_directory_is_entered_as_the_user_so_its_permissions_apply()
    {
        Modes.SkipUnlessUsersCanBeSwitched();
        using var dir = new PidDir();
        string privateDir = Directory.CreateDirectory(dir.File("private")).FullName;
        File.SetUnixFileMode(privateDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        int uid = Proc.UnusedUid();
        var spec = new ProcessSpec("/bin/sh", "-c", $"touch {dir.File("ran")}")
        {
            User = new ProcessUser(uid, uid),
            WorkingDirectory = privateDir,
        };

        var e = Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(spec, TestContext.Current.CancellationToken));

        Assert.Equal(SpawnFailure.BadWorkingDirectory, e.Failure);
        Assert.Equal(privateDir, e.Path);
        Assert.Equal(Libc.EACCES, e.ErrorCode);
        Assert.False(File.Exists(dir.File("ran")));

        // Root may enter it: the check was the user's, not Corral's.
        var asRoot = await ProcessTree.RunAsync(spec with { User = null, Arguments = ["-c", "pwd"] }, TestContext.Current.CancellationToken);
        Assert.Equal(privateDir, asRoot.StandardOutput.Trim());
    }

    [Fact(Timeout = 120_000)]
    public async Task The_tree_cannot_write_the_root_cgroup_procs_to_leave_its_leaf()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Cgroup);
        int uid = Proc.UnusedUid();
        string rootProcs = CgroupHost.Instance!.MountPoint + "/cgroup.procs";
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", $"echo $$ > {rootProcs} && echo escaped; grep '^0::' /proc/self/cgroup")
        {
            User = new ProcessUser(uid, uid),
            Containment = ContainmentMode.Cgroup,
        }, TestContext.Current.CancellationToken);

        Assert.DoesNotContain("escaped", result.StandardOutput);
        Assert.Contains("Permission denied", result.StandardError);
        Assert.EndsWith("/" + result.Outcome.TreeId, result.StandardOutput.Trim());
    }

    [Fact(Timeout = 120_000)]
    public void The_posix_spawn_fallback_refuses_a_user_rather_than_run_the_tree_as_corral()
    {
        using var dir = new PidDir();
        Spawner.PreferNative = false;
        var spec = new ProcessSpec("/bin/sh", "-c", $"touch {dir.File("ran")}") { User = new ProcessUser(12345, 12345) };

        var e = Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(spec, TestContext.Current.CancellationToken));

        Assert.Equal(SpawnFailure.UserUnavailable, e.Failure);
        Assert.Contains("native spawn", e.Message);
        Assert.False(File.Exists(dir.File("ran")));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    public void An_exclusive_uid_can_be_neither_root_nor_corrals_own(int uid)
    {
        int actual = uid < 0 ? (int)Libc.geteuid() : uid;
        var spec = new ProcessSpec("/bin/true") { User = new ProcessUser(actual, actual) { Exclusive = true } };

        var e = Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(spec, TestContext.Current.CancellationToken));

        Assert.Equal(SpawnFailure.InvalidArgument, e.Failure);
        Assert.Contains("cannot be exclusive", e.Message);
    }

    [Fact]
    public void A_user_is_parsed_from_a_name_a_uid_and_an_optional_gid()
    {
        int free = Proc.UnusedUid();
        Assert.Equal((free, free), Plain(ProcessUser.Parse($"{free}")));
        Assert.Equal((free, 7), Plain(ProcessUser.Parse($"{free}:7")));

        var root = ProcessUser.Parse("root");
        Assert.Equal((0, 0), (root.Uid, root.Gid));
        Assert.Contains(0, root.SupplementaryGroups);
        Assert.Equal((0, 5), (ProcessUser.Parse("0:5").Uid, ProcessUser.Parse("0:5").Gid));
        Assert.Equal(ProcessUser.Parse("root").Uid, ProcessUser.Parse("0").Uid);

        Assert.Throws<ArgumentException>(() => ProcessUser.Parse("no-such-user-" + free));
        Assert.Throws<ArgumentException>(() => ProcessUser.Parse(""));
        Assert.Throws<ArgumentException>(() => ProcessUser.Parse("1:x"));
        Assert.Throws<ArgumentException>(() => ProcessUser.Parse("99999999999"));
    }

    /// <summary>The ids of a user without supplementary groups (a uid with no passwd entry has none).</summary>
    private static (int Uid, int Gid) Plain(ProcessUser user)
    {
        Assert.Empty(user.SupplementaryGroups);
        return (user.Uid, user.Gid);
    }
}
