using Corral.Cli.Tests.Support;

namespace Corral.Cli.Tests;

/// <summary><c>corral run</c> exits with the child's status, shell style.</summary>
public sealed class RunExitCodeTests
{
    [Theory(Timeout = 120_000)]
    [InlineData(0)]
    [InlineData(3)]
    [InlineData(255)]
    public async Task Passes_the_exit_code_through(int code)
    {
        var run = await CorralCli.RunAsync(["run", "--", "/bin/sh", "-c", $"exit {code}"]);

        Assert.Equal(code, run.ExitCode);
        Assert.Empty(run.Stderr);
    }

    [Fact(Timeout = 120_000)]
    public async Task Exits_128_plus_N_when_a_signal_kills_the_child()
    {
        var run = await CorralCli.RunAsync(["run", "--", "/bin/sh", "-c", "kill -9 $$"]);

        Assert.Equal(128 + 9, run.ExitCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Exits_124_on_timeout_and_the_child_is_gone()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");

        var run = await CorralCli.RunAsync(["run", "--timeout", "500ms", "--grace", "1s", "--report", report, "--", "/bin/sleep", "300"]);

        Assert.Equal(124, run.ExitCode);
        Assert.True(run.Elapsed < TimeSpan.FromSeconds(60), $"took {run.Elapsed}");
        var json = Report.Load(report);
        Assert.Equal("timedOut", json.GetProperty("reason").GetString());
        Assert.Equal(15, json.GetProperty("signal").GetInt32());
        Assert.False(Proc.IsAlive(json.GetProperty("pid").GetInt32()));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_child_ignoring_SIGTERM_ends_by_SIGKILL_after_the_grace()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");

        // The shell ignores SIGTERM within a millisecond of starting, long before the timeout; its sleeps inherit that.
        var run = await CorralCli.RunAsync(["run", "--timeout", "1s", "--grace", "500ms", "--report", report, "--",
            "/bin/sh", "-c", $"trap '' TERM; echo $$ > {scratch.File("child.pid")}; while :; do sleep 1; done"]);

        Assert.Equal(124, run.ExitCode);
        var json = Report.Load(report);
        Assert.Equal("timedOut", json.GetProperty("reason").GetString());
        Assert.Equal(9, json.GetProperty("signal").GetInt32());
        Assert.False(Proc.IsAlive(await scratch.PidAsync("child.pid")));
    }
}
