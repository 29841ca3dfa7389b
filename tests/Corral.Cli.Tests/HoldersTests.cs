using System.Text.Json;
using Corral.Cli.Tests.Support;
using Corral.Processes;

namespace Corral.Cli.Tests;

/// <summary><c>corral holders PID</c> lists who holds the write end of PID's stdout/stderr pipes.</summary>
public sealed class HoldersTests
{
    [Fact(Timeout = 120_000)]
    public async Task Lists_the_process_and_the_escapee_holding_its_stdout()
    {
        using var scratch = new Scratch("corral-cli-test-");
        // A process whose stdout is a pipe (captured by the harness) and a grandchild in its own session holding it.
        await using var target = ProcessTree.Start(new ProcessSpec("/bin/sh", "-c",
            $"setsid sleep 300 & echo $! > {scratch.File("escapee.pid")}; echo $$ > {scratch.File("target.pid")}; exec sleep 300")
        {
            Containment = ContainmentMode.Session,
            Timeout = CorralCli.HarnessDeadline,
        }, TestContext.Current.CancellationToken);
        int escapee = await scratch.PidAsync("escapee.pid");
        int pid = await scratch.PidAsync("target.pid");

        var table = await CorralCli.RunAsync(["holders", pid.ToString()]);
        var json = await CorralCli.RunAsync(["holders", "--json", pid.ToString()]);

        Assert.Equal(0, table.ExitCode);
        var rows = table.StdoutText.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries)).ToArray();
        Assert.Contains(rows, r => r[0] == pid.ToString() && r[1] == "stdout" && r[2].Split(',').Contains("1"));
        Assert.Contains(rows, r => r[0] == escapee.ToString() && r[1] == "stdout");
        Assert.Contains(rows, r => r[0] == pid.ToString() && r[1] == "stderr");

        Assert.Equal(0, json.ExitCode);
        var entries = JsonDocument.Parse(json.Stdout).RootElement.EnumerateArray().ToArray();
        var mine = Assert.Single(entries, e => e.GetProperty("pid").GetInt32() == escapee && e.GetProperty("stream").GetString() == "stdout");
        Assert.Contains(1, mine.GetProperty("descriptors").EnumerateArray().Select(d => d.GetInt32()));
        Assert.Contains("sleep 300", mine.GetProperty("command").GetString());
        Assert.Contains(entries, e => e.GetProperty("pid").GetInt32() == pid);
        // Scratch.Dispose and the tree's disposal end both sleeps.
    }

    [Fact(Timeout = 120_000)]
    public async Task Nothing_to_list_when_the_streams_are_not_pipes()
    {
        using var scratch = new Scratch("corral-cli-test-");
        await using var target = ProcessTree.Start(new ProcessSpec("/bin/sh", "-c",
            $"exec >/dev/null 2>&1; echo $$ > {scratch.File("target.pid")}; exec sleep 300")
        {
            Containment = ContainmentMode.Session,
            Timeout = CorralCli.HarnessDeadline,
        }, TestContext.Current.CancellationToken);
        int pid = await scratch.PidAsync("target.pid");

        var json = await CorralCli.RunAsync(["holders", "--json", pid.ToString()]);

        Assert.Equal(0, json.ExitCode);
        Assert.Empty(JsonDocument.Parse(json.Stdout).RootElement.EnumerateArray());
    }

    [Fact(Timeout = 120_000)]
    public async Task Unknown_pid_is_a_clear_error()
    {
        // Above the kernel's pid_max limit (4194304), so it cannot exist.
        var run = await CorralCli.RunAsync(["holders", "99999999"]);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("99999999", run.StderrText);
        Assert.Empty(run.Stdout);
    }

    [Theory(Timeout = 120_000)]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("-5")]
    public async Task Invalid_pid_is_a_usage_error(string pid)
    {
        var run = await CorralCli.RunAsync(["holders", pid]);

        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("corral: ", run.StderrText);
    }
}
