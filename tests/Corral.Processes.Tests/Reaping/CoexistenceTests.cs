using System.Diagnostics;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Reaping;

/// <summary>Corral reaps only what it started (never waitpid(-1)) and leaves no zombie behind.</summary>
public class CoexistenceTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task System_Diagnostics_Process_and_Corral_both_get_correct_exit_codes()
    {
        var corralRuns = Enumerable.Range(0, 40).Select(async i =>
        {
            var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", $"exit {i % 7}"), Ct);
            return (Expected: i % 7, Actual: result.Outcome.ExitCode);
        }).ToList();

        var dotnetRuns = Enumerable.Range(0, 40).Select(async i =>
        {
            using var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", $"echo x; exit {(i % 5) + 10}"]) { RedirectStandardOutput = true })!;
            string output = await p.StandardOutput.ReadToEndAsync(Ct);
            await p.WaitForExitAsync(Ct);
            return (Expected: (i % 5) + 10, Actual: (int?)p.ExitCode, Output: output);
        }).ToList();

        foreach (var run in await Task.WhenAll(corralRuns))
            Assert.Equal(run.Expected, run.Actual);
        foreach (var run in await Task.WhenAll(dotnetRuns))
        {
            Assert.Equal(run.Expected, run.Actual);
            Assert.Equal("x\n", run.Output);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task No_zombie_is_left_by_anything_Corral_started()
    {
        var pids = new List<int>();
        for (int i = 0; i < 30; i++)
        {
            var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", i % 2 == 0 ? "true" : "kill -9 $$"), Ct);
            pids.Add(result.Outcome.Pid);
            Assert.Equal(i % 2 == 0 ? ExitReason.Exited : ExitReason.Signaled, result.Outcome.Reason);
        }

        // Our own direct children are the only zombies we could leave; none may remain.
        var ourZombies = Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out int p) ? p : 0)
            .Where(p => p > 0 && Proc.State(p) == 'Z')
            .Where(p => Proc.ParentPid(p) == Environment.ProcessId) // another process's zombie may be reaped mid-scan
            .ToArray();
        Assert.Empty(ourZombies.Intersect(pids));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_tree_started_while_Process_waits_does_not_steal_its_exit_status()
    {
        using var p = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "sleep 0.3; exit 17"]))!;
        var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "sleep 0.1; exit 5"), Ct);
        await p.WaitForExitAsync(Ct);
        Assert.Equal(17, p.ExitCode);
        Assert.Equal(5, result.Outcome.ExitCode);
    }
}
