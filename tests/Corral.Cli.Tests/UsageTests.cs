using Corral.Cli.Tests.Support;

namespace Corral.Cli.Tests;

/// <summary>Bad input gets one clear line on stderr and a documented exit code; help and version work.</summary>
public sealed class UsageTests
{
    [Fact(Timeout = 120_000)]
    public async Task Missing_program_exits_127_and_names_the_path()
    {
        var run = await CorralCli.RunAsync(["run", "--", "/nonexistent/corral-test-program", "arg"]);

        Assert.Equal(127, run.ExitCode);
        Assert.Contains("/nonexistent/corral-test-program", run.StderrText);
        Assert.Single(run.StderrText.TrimEnd('\n').Split('\n'));
        Assert.Empty(run.Stdout);
    }

    [Fact(Timeout = 120_000)]
    public async Task Program_not_on_PATH_exits_127()
    {
        var run = await CorralCli.RunAsync(["run", "corral-test-no-such-program"]);

        Assert.Equal(127, run.ExitCode);
        Assert.Contains("corral-test-no-such-program", run.StderrText);
    }

    [Fact(Timeout = 120_000)]
    public async Task Non_executable_file_exits_126_and_names_the_path()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string path = scratch.File("not-executable.sh");
        File.WriteAllText(path, "#!/bin/sh\necho should not run\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);

        var run = await CorralCli.RunAsync(["run", "--", path]);

        Assert.Equal(126, run.ExitCode);
        Assert.Contains(path, run.StderrText);
        Assert.Empty(run.Stdout);
    }

    [Theory(Timeout = 120_000)]
    [InlineData("--timeout", "abc")]
    [InlineData("--timeout", "-1")]
    [InlineData("--timeout", "0")]
    [InlineData("--timeout", "5 parsecs")]
    [InlineData("--grace", "1d")]
    [InlineData("--linger", "forever")]
    [InlineData("--user", "no-such-user-of-corral")]
    [InlineData("--user", "1000:staff")]
    [InlineData("--memory-max", "lots")]
    [InlineData("--memory-max", "0")]
    [InlineData("--pids-max", "0")]
    [InlineData("--pids-max", "1.5")]
    [InlineData("--cpu-max", "0.001")]
    [InlineData("--cpu-max", "half")]
    public async Task Bad_option_value_is_a_usage_error_and_runs_nothing(string option, string value)
    {
        using var scratch = new Scratch("corral-cli-test-");
        string marker = scratch.File("ran");

        var run = await CorralCli.RunAsync(["run", option, value, "--", "/bin/sh", "-c", $"touch {marker}"]);

        Assert.Equal(2, run.ExitCode);
        Assert.Contains(option, run.StderrText);
        Assert.Contains("--help", run.StderrText);
        Assert.False(File.Exists(marker));
    }

    [Theory(Timeout = 120_000)]
    [InlineData("run")]
    [InlineData("run", "--timeout", "5s")]
    [InlineData("run", "--timout", "5s", "--", "/bin/true")]
    [InlineData("frobnicate")]
    [InlineData]
    public async Task Bad_usage_exits_2(params string[] args)
    {
        var run = await CorralCli.RunAsync(args);

        Assert.Equal(2, run.ExitCode);
        Assert.StartsWith("corral: ", run.StderrText);
    }

    [Fact(Timeout = 120_000)]
    public async Task Unwritable_report_exits_125_before_running_anything()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string marker = scratch.File("ran");
        string report = scratch.File("no/such/dir/report.json");

        var run = await CorralCli.RunAsync(["run", "--report", report, "--", "/bin/sh", "-c", $"touch {marker}"]);

        Assert.Equal(125, run.ExitCode);
        Assert.Contains(report, run.StderrText);
        Assert.False(File.Exists(marker));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_run_that_cannot_start_leaves_the_report_path_as_it_was()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string existing = scratch.File("existing.json");
        File.WriteAllText(existing, "previous");
        string fresh = scratch.File("fresh.json");

        var first = await CorralCli.RunAsync(["run", "--report", existing, "--", "/nonexistent/program"]);
        var second = await CorralCli.RunAsync(["run", "--report", fresh, "--", "/nonexistent/program"]);

        Assert.Equal(127, first.ExitCode);
        Assert.Equal(127, second.ExitCode);
        Assert.Equal("previous", File.ReadAllText(existing));
        Assert.False(File.Exists(fresh));
    }

    [Fact(Timeout = 120_000)]
    public async Task Arguments_after_CMD_belong_to_CMD()
    {
        var run = await CorralCli.RunAsync(["run", "--timeout", "30s", "--", "/bin/echo", "--timeout", "-n", "--", "x"]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("--timeout -n -- x\n", run.StdoutText);
    }

    [Fact(Timeout = 120_000)]
    public async Task Version_prints_the_version()
    {
        var run = await CorralCli.RunAsync(["--version"]);

        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"^\d+\.\d+\.\d+", run.StdoutText);
    }

    [Theory(Timeout = 120_000)]
    [InlineData("run", "--timeout", "--linger", "--fallback", "--report", "Exit status", "124")]
    [InlineData("run", "--user", "NAME|UID[:GID]", "--memory-max", "SIZE", "--pids-max", "--cpu-max", "CORES", "--require-limits", "Users and limits", "137")]
    [InlineData("holders", "--json", "PID")]
    public async Task Help_documents_the_command(string command, params string[] expected)
    {
        var run = await CorralCli.RunAsync([command, "--help"]);

        Assert.Equal(0, run.ExitCode);
        Assert.All(expected, e => Assert.Contains(e, run.StdoutText));
    }
}
