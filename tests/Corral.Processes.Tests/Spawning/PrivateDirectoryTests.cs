using Corral.Processes.Internal.Spawning;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Spawning;

/// <summary>A tree may see its own directory in place of a shared one (/tmp), in a mount namespace of its own.</summary>
public sealed class PrivateDirectoryTests
{
    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task What_the_tree_writes_in_its_private_tmp_lands_in_its_own_directory_and_never_in_the_hosts(ContainmentMode mode)
    {
        Modes.SkipUnlessUsersCanBeSwitched(mode);
        using var dir = new PidDir();
        string own = dir.OpenDirectory("tmp"), shm = dir.OpenDirectory("shm"); // the tree's uid writes in them
        string name = "corral-private-" + Guid.NewGuid().ToString("N");
        int uid = Proc.UnusedUid();
        // Both sources are under /tmp: binding /tmp first must not hide the second (sources are opened before any mount).
        var result = await ProcessTree.RunAsync(Modes.Bash($"echo mine > /tmp/{name} && echo shm > /dev/shm/{name} && ls /tmp && (sleep 0.1 && echo child > /tmp/{name}-child) & wait", mode) with
        {
            User = new ProcessUser(uid, uid),
            PrivateDirectories = new Dictionary<string, string> { ["/tmp"] = own, ["/dev/shm"] = shm },
        }, TestContext.Current.CancellationToken);

        Assert.Equal(0, result.Outcome.ExitCode);
        Assert.Equal($"{name}\n", result.StandardOutput); // the tree saw only its own /tmp
        Assert.Equal("mine\n", File.ReadAllText(Path.Combine(own, name)));
        Assert.Equal("child\n", File.ReadAllText(Path.Combine(own, name + "-child"))); // its children share the view
        Assert.Equal("shm\n", File.ReadAllText(Path.Combine(shm, name)));
        Assert.False(File.Exists(Path.Combine("/tmp", name)));
        Assert.False(File.Exists(Path.Combine("/dev/shm", name)));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(own, StringComparison.Ordinal)); // ours is untouched
    }

    [Fact(Timeout = 60_000)]
    public async Task A_private_directory_that_is_not_absolute_or_missing_is_refused_before_anything_starts()
    {
        var relative = await Assert.ThrowsAsync<ProcessSpawnException>(() => ProcessTree.RunAsync(new ProcessSpec("/bin/true")
        {
            PrivateDirectories = new Dictionary<string, string> { ["tmp"] = "/tmp" },
        }, TestContext.Current.CancellationToken));
        Assert.Equal(SpawnFailure.InvalidArgument, relative.Failure);
        var missing = await Assert.ThrowsAsync<ProcessSpawnException>(() => ProcessTree.RunAsync(new ProcessSpec("/bin/true")
        {
            PrivateDirectories = new Dictionary<string, string> { ["/tmp"] = "/no/such/directory" },
        }, TestContext.Current.CancellationToken));
        Assert.Equal(SpawnFailure.InvalidArgument, missing.Failure);
    }

    [Fact(Timeout = 60_000)]
    public async Task Without_the_native_spawn_private_directories_are_refused_never_ignored()
    {
        using var dir = new PidDir();
        Spawner.PreferNative = false;
        var refused = await Assert.ThrowsAsync<ProcessSpawnException>(() => ProcessTree.RunAsync(new ProcessSpec("/bin/true")
        {
            PrivateDirectories = new Dictionary<string, string> { ["/tmp"] = dir.Path },
        }, TestContext.Current.CancellationToken));
        Assert.Equal(SpawnFailure.ContainmentUnavailable, refused.Failure);
    }

    [Fact(Timeout = 120_000)]
    public async Task Trees_of_a_uid_with_the_same_directories_join_one_namespace_and_trees_of_root_each_have_their_own()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Session);
        using var dir = new PidDir();
        string own = dir.OpenDirectory("tmp");
        int uid = Proc.UnusedUid();
        // Over a directory that does not hold ours: the tree's inherited one stays in view.
        string target = Modes.PrivateTarget;
        var mounts = new Dictionary<string, string> { [target] = own };
        var spec = new ProcessSpec("/bin/sh", ["-c", "readlink /proc/self/ns/mnt; pwd -P"]) { PrivateDirectories = mounts };
        async Task<(string Namespace, string Directory)> Run(ProcessUser? user)
        {
            var result = await ProcessTree.RunAsync(spec with { User = user }, TestContext.Current.CancellationToken);
            Assert.Equal(0, result.Outcome.ExitCode);
            var lines = result.StandardOutput.Split('\n');
            return (lines[0], lines[1]);
        }

        // The first tree stays alive, so its namespace's number cannot pass to another meanwhile.
        await using var first = ProcessTree.Start(new ProcessSpec("/bin/sh", ["-c", $"readlink /proc/self/ns/mnt > {target}/ns; exec sleep 60"])
        {
            User = new ProcessUser(uid, uid),
            PrivateDirectories = mounts,
        }, TestContext.Current.CancellationToken);
        string recorded = Path.Combine(own, "ns");
        await Proc.WaitForAsync(() => File.Exists(recorded) && File.ReadAllText(recorded).EndsWith('\n'), TimeSpan.FromSeconds(30), "the first tree's namespace");
        string ns = File.ReadAllText(recorded).Trim();

        var second = await Run(new ProcessUser(uid, uid));
        var root = await Run(null);
        Assert.NotEqual(File.ResolveLinkTarget("/proc/self/ns/mnt", false)!.ToString(), ns);
        Assert.Equal(ns, second.Namespace);
        Assert.NotEqual(ns, root.Namespace); // root could mount in its namespace, and the next tree would see it
        Assert.Equal(Environment.CurrentDirectory, second.Directory); // joining keeps the working directory it inherited
        first.Cancel(StopSignal.Kill);
        await first.Completion;
    }

    [Fact(Timeout = 120_000)]
    public async Task A_mount_a_root_tree_makes_in_its_namespace_is_never_seen_by_the_next_tree()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Session);
        using var dir = new PidDir();
        string own = Directory.CreateDirectory(dir.File("tmp")).FullName;
        var spec = new ProcessSpec("/bin/sh", ["-c", "mkdir -p /tmp/m && mount -t tmpfs corral-test /tmp/m && touch /tmp/m/f"])
        {
            PrivateDirectories = new Dictionary<string, string> { ["/tmp"] = own },
        };
        var mounted = await ProcessTree.RunAsync(spec, TestContext.Current.CancellationToken);
        Assert.Equal(0, mounted.Outcome.ExitCode);
        var next = await ProcessTree.RunAsync(spec with { Arguments = ["-c", "test -d /tmp/m && test ! -e /tmp/m/f"] }, TestContext.Current.CancellationToken);
        Assert.Equal(0, next.Outcome.ExitCode);
        Assert.False(File.Exists(Path.Combine(own, "m", "f")));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_source_directory_removed_and_made_again_is_bound_afresh_never_the_removed_one()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Session);
        using var dir = new PidDir();
        string own = dir.File("tmp");
        int uid = Proc.UnusedUid();
        var spec = new ProcessSpec("/bin/sh", ["-c", "ls -A /tmp; echo x > /tmp/left"])
        {
            User = new ProcessUser(uid, uid),
            PrivateDirectories = new Dictionary<string, string> { ["/tmp"] = own },
        };
        for (int round = 0; round < 3; round++)
        {
            Directory.CreateDirectory(own);
            File.SetUnixFileMode(own, (UnixFileMode)Convert.ToInt32("777", 8));
            var result = await ProcessTree.RunAsync(spec, TestContext.Current.CancellationToken);
            Assert.Equal(0, result.Outcome.ExitCode);
            Assert.Equal("", result.StandardOutput); // not what the tree before left in the directory that was removed
            Assert.True(File.Exists(Path.Combine(own, "left")));
            Directory.Delete(own, recursive: true);
        }
    }

    [Fact(Timeout = 60_000)]
    public void A_new_namespace_reports_the_directories_its_mounts_hold_source_by_source()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Session);
        using var dir = new PidDir();
        string first = Directory.CreateDirectory(dir.File("a")).FullName, second = Directory.CreateDirectory(dir.File("b")).FullName;
        var before = MountNamespaces.Identity(first);
        using var made = MountNamespaces.MakeNamespace([("/tmp", first), ("/var/tmp", second)], out var bound);
        Assert.NotNull(made);
        // Taken from the descriptors the mounts were made from, so a path swapped while they were made (and swapped back
        // before a check by path) is seen: what is bound differs from what the key names.
        Assert.Equal([before!.Value, MountNamespaces.Identity(second)!.Value], bound);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task A_tree_with_an_ipc_namespace_of_its_own_sees_no_other_trees_objects_and_leaves_none(ContainmentMode mode)
    {
        Modes.SkipUnlessUsersCanBeSwitched(mode);
        int uid = Proc.UnusedUid();
        var ours = await ProcessTree.RunAsync(new ProcessSpec("/usr/bin/ipcmk", ["-M", "4096"]), TestContext.Current.CancellationToken);
        string id = ours.StandardOutput.Trim().Split(' ')[^1];
        try
        {
            // In its namespace the tree sees its own segment alone (the header line and one), and it goes with the tree.
            var result = await ProcessTree.RunAsync(Modes.Bash("ipcmk -M 4096 > /dev/null && wc -l < /proc/sysvipc/shm", mode) with
            {
                User = new ProcessUser(uid, uid),
                PrivateIpc = true,
            }, TestContext.Current.CancellationToken);
            Assert.Equal(0, result.Outcome.ExitCode);
            Assert.Equal("2\n", result.StandardOutput);
            var ownedByTree = File.ReadAllLines("/proc/sysvipc/shm").Skip(1)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f[9] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.Empty(ownedByTree); // cuid
            Assert.Contains(File.ReadAllLines("/proc/sysvipc/shm").Skip(1), l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1] == id);
        }
        finally
        {
            await ProcessTree.RunAsync(new ProcessSpec("/usr/bin/ipcrm", ["-m", id]), TestContext.Current.CancellationToken);
        }
    }
}
