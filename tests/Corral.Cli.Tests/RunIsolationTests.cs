using System.Text.Json;
using Corral.Cli.Tests.Support;
using Corral.Processes;

namespace Corral.Cli.Tests;

/// <summary>
/// <c>--user</c> and the limits on this host. Enforcement of the limits is tested in a guest with a pure cgroup v2
/// hierarchy (<see cref="RunLimitsGuestTests"/>); a hybrid host like this one binds the controllers to cgroup v1.
/// </summary>
public sealed class RunIsolationTests
{
    private static void SkipUnlessRoot() =>
        Assert.SkipWhen(Environment.UserName != "root", "not running as root: corral cannot give CMD another uid");

    [Fact(Timeout = 120_000)]
    public async Task User_runs_CMD_as_a_uid_without_a_passwd_entry_with_its_gid_and_no_new_privs()
    {
        SkipUnlessRoot();
        int uid = Proc.UnusedUid();

        var run = await CorralCli.RunAsync(["run", "--user", $"{uid}", "--", "/bin/sh", "-c",
            "id -u; id -g; id -G; grep -E '^NoNewPrivs' /proc/self/status"]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"{uid}\n{uid}\n{uid}\nNoNewPrivs:\t1\n", run.StdoutText);
    }

    [Fact(Timeout = 120_000)]
    public async Task User_with_a_gid_and_a_named_user_take_their_groups()
    {
        SkipUnlessRoot();
        int uid = Proc.UnusedUid();

        var numeric = await CorralCli.RunAsync(["run", "--user", $"{uid}:{uid + 1}", "--", "/bin/sh", "-c", "id -u; id -g"]);
        var named = await CorralCli.RunAsync(["run", "--user", "nobody", "--", "/bin/sh", "-c", "id -un; id -u"]);

        Assert.Equal($"{uid}\n{uid + 1}\n", numeric.StdoutText);
        Assert.Equal(0, named.ExitCode);
        Assert.StartsWith("nobody\n", named.StdoutText);
    }

    [Fact(Timeout = 120_000)]
    public async Task Limits_the_host_cannot_enforce_are_reported_as_not_enforced_and_CMD_still_runs()
    {
        var enforceable = await HostLimits.EnforcedAsync();
        Assert.SkipWhen(enforceable is { Memory: true, Pids: true, Cpu: true }, "this host enforces every limit (see RunLimitsGuestTests)");
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");

        var run = await CorralCli.RunAsync(["run", "--memory-max", "64M", "--pids-max", "20", "--cpu-max", "0.2", "--report", report, "--", "/bin/sh", "-c", "echo ran"]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("ran\n", run.StdoutText);
        var enforced = Report.Load(report).GetProperty("resources").GetProperty("enforced");
        Assert.Equal(enforceable.Memory, enforced.GetProperty("memory").GetBoolean());
        Assert.Equal(enforceable.Pids, enforced.GetProperty("pids").GetBoolean());
        Assert.Equal(enforceable.Cpu, enforced.GetProperty("cpu").GetBoolean());
    }

    [Fact(Timeout = 120_000)]
    public async Task Require_limits_refuses_to_run_where_a_limit_cannot_be_enforced()
    {
        var enforceable = await HostLimits.EnforcedAsync();
        Assert.SkipWhen(enforceable is { Memory: true, Pids: true, Cpu: true }, "this host enforces every limit (see RunLimitsGuestTests)");
        using var scratch = new Scratch("corral-cli-test-");
        string marker = scratch.File("ran");

        var run = await CorralCli.RunAsync(["run", "--require-limits", "--memory-max", "64M", "--pids-max", "20", "--", "/bin/sh", "-c", $"touch {marker}"]);

        Assert.Equal(125, run.ExitCode);
        Assert.Contains("cannot be enforced", run.StderrText);
        Assert.False(File.Exists(marker));
    }

    [Fact(Timeout = 120_000)]
    public async Task User_with_fallback_still_runs_as_the_user()
    {
        SkipUnlessRoot();
        int uid = Proc.UnusedUid();
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");

        var run = await CorralCli.RunAsync(["run", "--fallback", "--user", $"{uid}", "--report", report, "--", "/bin/sh", "-c", "id -u"]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal($"{uid}\n", run.StdoutText);
        var json = Report.Load(report);
        Assert.Equal("session", json.GetProperty("containment").GetString());
        Assert.Equal(JsonValueKind.Null, json.GetProperty("resources").GetProperty("cpuUserMs").ValueKind);
    }
}
