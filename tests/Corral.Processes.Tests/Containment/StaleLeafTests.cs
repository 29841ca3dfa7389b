using Corral.Processes.Internal.Containment;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>Leaves with no process that outlived their owner are removed when a process first uses the cgroup parent, and a tree's leaf goes with what was nested in it.</summary>
public sealed class StaleLeafTests
{
    [Fact(Timeout = 120_000)]
    public async Task Only_old_leaves_with_no_process_are_removed_with_the_cgroups_nested_in_them()
    {
        Modes.SkipIfUnavailable(ContainmentMode.Cgroup);
        string parent = CgroupHost.Instance!.ParentPath;
        string Leaf() => Path.Combine(parent, Guid.NewGuid().ToString("N"));
        string oldEmpty = Leaf(), fresh = Leaf(), oldWithNested = Leaf(), oldPopulated = Leaf(), oldPopulatedNested = Leaf();
        foreach (string leaf in new[] { oldEmpty, fresh, oldWithNested, oldPopulated, oldPopulatedNested })
            Directory.CreateDirectory(leaf);
        // What a Corral that ran in a tree leaves in its leaf: its own parent cgroup, with a leaf of its own in it.
        Directory.CreateDirectory(Path.Combine(oldWithNested, "corral", "leaf"));
        string busyNested = Directory.CreateDirectory(Path.Combine(oldPopulatedNested, "corral", "leaf")).FullName;
        string idleNested = Directory.CreateDirectory(Path.Combine(oldPopulatedNested, "corral", "idle")).FullName; // a live inner Corral's next leaf
        using var sleeper = System.Diagnostics.Process.Start("/bin/sleep", "300");
        using var nestedSleeper = System.Diagnostics.Process.Start("/bin/sleep", "300");
        await File.WriteAllTextAsync(Path.Combine(oldPopulated, "cgroup.procs"), sleeper.Id.ToString(), TestContext.Current.CancellationToken);
        await File.WriteAllTextAsync(Path.Combine(busyNested, "cgroup.procs"), nestedSleeper.Id.ToString(), TestContext.Current.CancellationToken);
        try
        {
            foreach (string leaf in new[] { oldEmpty, oldWithNested, oldPopulated, oldPopulatedNested })
                Directory.SetLastWriteTimeUtc(leaf, DateTime.UtcNow - TimeSpan.FromHours(1));

            CgroupHost.RemoveStaleLeaves(parent);

            Assert.False(Directory.Exists(oldEmpty));
            Assert.False(Directory.Exists(oldWithNested));
            Assert.True(Directory.Exists(fresh));
            Assert.True(Directory.Exists(oldPopulated));
            Assert.True(Directory.Exists(busyNested));
            Assert.True(Directory.Exists(idleNested));
            Assert.True(Proc.IsAlive(sleeper.Id));
            Assert.True(Proc.IsAlive(nestedSleeper.Id));
        }
        finally
        {
            foreach (var (p, leaf) in new[] { (sleeper, oldPopulated), (nestedSleeper, busyNested) })
            {
                p.Kill();
                await p.WaitForExitAsync(TestContext.Current.CancellationToken);
                await Proc.WaitForAsync(() => File.ReadAllText(Path.Combine(leaf, "cgroup.procs")).Length == 0, TimeSpan.FromSeconds(5), "the leaf to empty");
            }

            foreach (string leaf in new[] { oldEmpty, oldWithNested, oldPopulatedNested, oldPopulated, fresh })
                DeleteCgroups(leaf);
        }
    }

    /// <summary>rmdir of a test's cgroup and everything nested in it, deepest first (cgroupfs has no recursive delete).</summary>
    private static void DeleteCgroups(string cgroup)
    {
        if (!Directory.Exists(cgroup))
            return;
        foreach (string nested in Directory.EnumerateDirectories(cgroup))
            DeleteCgroups(nested);
        Directory.Delete(cgroup);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_trees_leaf_is_removed_at_its_end_with_the_cgroups_a_process_of_it_nested_there()
    {
        Modes.SkipIfUnavailable(ContainmentMode.Cgroup);
        // As a Corral run inside the tree does: its own parent cgroup inside its leaf, and a leaf of its own in that.
        string script = $"leaf={CgroupHost.Instance!.MountPoint}$(sed -n 's/^0:://p' /proc/self/cgroup); mkdir -p \"$leaf/corral/inner\" && echo \"$leaf\"";
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", ["-c", script]) { Containment = ContainmentMode.Cgroup }, TestContext.Current.CancellationToken);
        string leaf = result.StandardOutput.Trim();
        Assert.StartsWith(CgroupHost.Instance.ParentPath + "/", leaf);
        await Proc.WaitForAsync(() => !Directory.Exists(leaf), TimeSpan.FromSeconds(10), "the tree's leaf to be removed");
    }
}
