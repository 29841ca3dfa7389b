using System.Diagnostics;
using Corral.Cli.Tests.Support;

namespace Corral.Cli.Tests;

/// <summary>Signals sent to corral start the tree's teardown; corral survives them and exits with the child's status.</summary>
public sealed class RunSignalTests
{
    [Theory(Timeout = 120_000)]
    [InlineData(Proc.SIGINT, 130)]
    [InlineData(Proc.SIGTERM, 143)]
    public async Task Forwards_the_signal_to_the_tree_and_exits_with_the_childs_status(int signal, int expected)
    {
        using var scratch = new Scratch("corral-cli-test-");
        var clock = Stopwatch.StartNew();
        await using var tree = CorralCli.Start(["run", "--", "/bin/sh", "-c", $"echo $$ > {scratch.File("child.pid")}; exec sleep 30"]);
        // corral registers its handlers before it starts the child, so once the child runs, the signal is forwarded.
        int sleep = await scratch.PidAsync("child.pid");
        Assert.True(Proc.IsAlive(sleep));

        var signalledAt = clock.Elapsed;
        Assert.True(Proc.Signal(tree.Pid, signal));
        var run = await CorralCli.FinishAsync(tree, clock);

        Assert.Equal(expected, run.ExitCode);
        Assert.True(run.Elapsed - signalledAt < TimeSpan.FromSeconds(10), $"corral took {run.Elapsed - signalledAt} to finish after the signal");
        Assert.False(Proc.IsAlive(sleep), "the child survived the forwarded signal");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_child_that_handles_SIGINT_decides_the_exit_code()
    {
        using var scratch = new Scratch("corral-cli-test-");
        var clock = Stopwatch.StartNew();
        await using var tree = CorralCli.Start(["run", "--", "/bin/bash", "-c",
            $"trap 'echo cleaned up; exit 5' INT; echo $$ > {scratch.File("child.pid")}; while :; do sleep 0.05; done"]);
        await scratch.PidAsync("child.pid");

        Assert.True(Proc.Signal(tree.Pid, Proc.SIGINT));
        var run = await CorralCli.FinishAsync(tree, clock);

        Assert.Equal(5, run.ExitCode);
        Assert.Equal("cleaned up\n", run.StdoutText);
    }
}
