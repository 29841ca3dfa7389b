using Corral.Processes.Internal.Spawning;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Spawning;

/// <summary>A tree may see in /proc only the processes of its own user, through a procfs of its own.</summary>
public sealed class OwnProcessesTests
{
    /// <summary>What a tree as a fresh uid sees of <paramref name="victim"/> (another user's process), of its own child, and how many processes it sees in all.</summary>
    private static async Task<Dictionary<string, string>> LookAsync(int victim, ContainmentMode mode, bool ownProcessesOnly, IReadOnlyDictionary<string, string>? directories = null)
    {
        int uid = Proc.UnusedUid();
        string script = $"sleep 30 & c=$!; test -e /proc/{victim} && echo victim=seen || echo victim=unseen; " +
                        $"echo cmdline=$(tr '\\0' ' ' < /proc/{victim}/cmdline 2>/dev/null | wc -c); test -e /proc/$c && echo child=seen; " +
                        "echo all=$(ls /proc | grep -c '^[0-9]'); kill $c";
        var result = await ProcessTree.RunAsync(Modes.Bash(script, mode) with
        {
            User = new ProcessUser(uid, uid),
            OwnProcessesOnly = ownProcessesOnly,
            PrivateDirectories = directories,
        }, TestContext.Current.CancellationToken);
        Assert.Equal(0, result.Outcome.ExitCode);
        return result.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task A_tree_that_sees_its_own_processes_only_finds_no_trace_of_another_users_and_the_host_still_sees_all(ContainmentMode mode)
    {
        Modes.SkipUnlessUsersCanBeSwitched(mode);
        await using var other = ProcessTree.Start(new ProcessSpec("/bin/sleep", ["60"]), TestContext.Current.CancellationToken);
        await Proc.WaitForAsync(() => File.Exists($"/proc/{other.Pid}/cmdline") && File.ReadAllText($"/proc/{other.Pid}/cmdline").StartsWith("/bin/sleep"),
            TimeSpan.FromSeconds(30), "the other user's sleep");

        var open = await LookAsync(other.Pid, mode, ownProcessesOnly: false);
        Assert.Equal("seen", open["victim"]); // what the option changes: without it, another user's process is in view

        var own = await LookAsync(other.Pid, mode, ownProcessesOnly: true);
        Assert.Equal("unseen", own["victim"]);
        Assert.Equal("0", own["cmdline"]);
        Assert.Equal("seen", own["child"]);
        Assert.InRange(int.Parse(own["all"]), 1, 8); // its own: bash, sleep, ls, grep and the like

        // With private directories the same: one namespace holds both.
        using var dir = new PidDir();
        var both = await LookAsync(other.Pid, mode, ownProcessesOnly: true, new Dictionary<string, string> { [Modes.PrivateTarget] = dir.OpenDirectory("tmp") });
        Assert.Equal("unseen", both["victim"]);
        Assert.Equal("seen", both["child"]);

        // The host's /proc is not changed: this process still sees the other's, and its /proc has no hidepid.
        Assert.True(File.Exists($"/proc/{other.Pid}/cmdline"));
        Assert.DoesNotContain(File.ReadAllLines("/proc/self/mountinfo"), l => l.Contains(" /proc ", StringComparison.Ordinal) && l.Contains("hidepid", StringComparison.Ordinal));
        other.Cancel(StopSignal.Kill);
        await other.Completion;
    }

    [Fact(Timeout = 120_000)]
    public async Task Trees_that_see_their_own_processes_only_never_join_a_namespace_made_without_that_and_share_one_among_them()
    {
        Modes.SkipUnlessUsersCanBeSwitched(ContainmentMode.Session);
        using var dir = new PidDir();
        int uid = Proc.UnusedUid();
        var spec = new ProcessSpec("/bin/sh", ["-c", "readlink /proc/self/ns/mnt; ls /proc | grep -c '^[0-9]'"])
        {
            User = new ProcessUser(uid, uid),
            PrivateDirectories = new Dictionary<string, string> { [Modes.PrivateTarget] = dir.OpenDirectory("tmp") },
        };
        async Task<(string Namespace, int Seen)> Run(bool ownProcessesOnly)
        {
            var result = await ProcessTree.RunAsync(spec with { OwnProcessesOnly = ownProcessesOnly }, TestContext.Current.CancellationToken);
            Assert.Equal(0, result.Outcome.ExitCode);
            var lines = result.StandardOutput.Split('\n');
            return (lines[0], int.Parse(lines[1]));
        }

        var plain = await Run(false);
        var first = await Run(true);
        var second = await Run(true);
        var plainAgain = await Run(false);
        Assert.NotEqual(plain.Namespace, first.Namespace);
        Assert.Equal(first.Namespace, second.Namespace);
        Assert.Equal(plain.Namespace, plainAgain.Namespace);
        Assert.True(plainAgain.Seen > 8, $"without the option the tree sees every process ({plainAgain.Seen})");
        Assert.InRange(second.Seen, 1, 8);
    }

    [Fact(Timeout = 60_000)]
    public async Task Without_the_native_spawn_a_tree_that_must_see_its_own_processes_only_is_refused_never_run_with_all_in_view()
    {
        Spawner.PreferNative = false; // for this test's own flow only
        var refused = await Assert.ThrowsAsync<ProcessSpawnException>(() => ProcessTree.RunAsync(new ProcessSpec("/bin/true") { OwnProcessesOnly = true },
            TestContext.Current.CancellationToken));
        Assert.Equal(SpawnFailure.ContainmentUnavailable, refused.Failure);
    }
}
