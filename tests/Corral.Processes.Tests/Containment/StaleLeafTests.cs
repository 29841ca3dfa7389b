using Corral.Processes.Internal.Containment;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>Empty leaves that outlived their owner are removed when a process first uses the cgroup parent.</summary>
public sealed class StaleLeafTests
{
    [Fact(Timeout = 120_000)]
    public async Task Only_old_empty_leaves_are_removed()
    {
        Modes.SkipIfUnavailable(ContainmentMode.Cgroup);
        string parent = CgroupHost.Instance!.ParentPath;
        string Leaf() => Path.Combine(parent, Guid.NewGuid().ToString("N"));
        string oldEmpty = Leaf(), fresh = Leaf(), oldWithChild = Leaf(), oldPopulated = Leaf();
        foreach (string leaf in new[] { oldEmpty, fresh, oldWithChild, oldPopulated })
            Directory.CreateDirectory(leaf);
        Directory.CreateDirectory(Path.Combine(oldWithChild, "child"));
        using var sleeper = System.Diagnostics.Process.Start("/bin/sleep", "300");
        await File.WriteAllTextAsync(Path.Combine(oldPopulated, "cgroup.procs"), sleeper.Id.ToString(), TestContext.Current.CancellationToken);
        try
        {
            foreach (string leaf in new[] { oldEmpty, oldWithChild, oldPopulated })
                Directory.SetLastWriteTimeUtc(leaf, DateTime.UtcNow - TimeSpan.FromHours(1));

            CgroupHost.RemoveStaleLeaves(parent);

            Assert.False(Directory.Exists(oldEmpty));
            Assert.True(Directory.Exists(fresh));
            Assert.True(Directory.Exists(oldWithChild));
            Assert.True(Directory.Exists(oldPopulated));
            Assert.True(Proc.IsAlive(sleeper.Id));
        }
        finally
        {
            sleeper.Kill();
            await sleeper.WaitForExitAsync(TestContext.Current.CancellationToken);
            await Proc.WaitForAsync(() => File.ReadAllText(Path.Combine(oldPopulated, "cgroup.procs")).Length == 0, TimeSpan.FromSeconds(5), "the leaf to empty");
            foreach (string dir in new[] { Path.Combine(oldWithChild, "child"), oldWithChild, oldPopulated, fresh })
                Directory.Delete(dir);
        }
    }
}
