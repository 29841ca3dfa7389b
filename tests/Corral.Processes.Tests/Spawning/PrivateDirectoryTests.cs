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
        string own = Directory.CreateDirectory(dir.File("tmp")).FullName, shm = Directory.CreateDirectory(dir.File("shm")).FullName;
        File.SetUnixFileMode(shm, (UnixFileMode)Convert.ToInt32("777", 8));
        string name = "corral-private-" + Guid.NewGuid().ToString("N");
        int uid = Proc.UnusedUid();
        File.SetUnixFileMode(own, (UnixFileMode)Convert.ToInt32("777", 8)); // the tree's uid writes in it
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
}
