using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Teardown;

/// <summary>Runs alone: a 200-process teardown holds a pidfd per process, which would upset tests that count our descriptors.</summary>
[CollectionDefinition(nameof(LargeTreeCollection), DisableParallelization = true)]
public class LargeTreeCollection;

[Collection(nameof(LargeTreeCollection))]
public class LargeTreeReportTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task The_report_lists_every_process_of_a_large_SIGTERM_ignoring_tree_with_its_command_line(ContainmentMode mode)
    {
        // 200 processes that ignore SIGTERM (the ignored disposition survives exec), half of them in their own
        // sessions, each with a distinct command line: the first signal reaches them all alive, so each one's command
        // line must be in the report, whatever the order in which teardown records and signals them.
        Modes.SkipIfUnavailable(mode);
        using var dir = new PidDir();
        const int half = 100;
        var spec = Modes.Bash(
            $"trap '' TERM; i=0; while [ $i -lt {half} ]; do sleep 300 1$i & echo $! >> \"$D/pids\"; setsid sleep 300 2$i & echo $! >> \"$D/pids\"; i=$((i+1)); done; exec sleep 300 0", mode) with
        {
            Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(300) },
        };
        await using var tree = ProcessTree.Start(spec, Ct);
        await Proc.WaitForAsync(() => CommandLine(tree.Pid) == "sleep 300 0" && dir.AllPids().Count == 2 * half
            && dir.AllPids().All(p => CommandLine(p).StartsWith("sleep 300 ", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "every sleep to run");
        var expected = dir.AllPids().ToDictionary(p => p, CommandLine);
        expected[tree.Pid] = "sleep 300 0";

        tree.Cancel();
        var outcome = await tree.Completion;

        Assert.Equal(9, outcome.Signal);
        var killed = outcome.Killed.ToDictionary(k => k.Pid);
        foreach (var (pid, commandLine) in expected)
        {
            Assert.True(killed.TryGetValue(pid, out var k), $"{pid} ({commandLine}) missing from the report");
            Assert.Equal(commandLine, k.CommandLine);
            var foundBy = mode == ContainmentMode.Cgroup ? FoundBy.Cgroup
                : commandLine.StartsWith("sleep 300 2", StringComparison.Ordinal) ? FoundBy.EnvironmentTag : FoundBy.ProcessGroup;
            Assert.Equal(foundBy, k.FoundBy);
            Assert.False(Proc.IsAlive(pid));
        }

        Assert.Equal(outcome.Killed.OrderBy(k => k.Pid).Select(k => k.Pid), outcome.Killed.Select(k => k.Pid));
    }

    private static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }
}
