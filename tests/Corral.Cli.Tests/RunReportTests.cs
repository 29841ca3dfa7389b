using System.Text.Json;
using Corral.Cli.Tests.Support;
using Corral.Processes;

namespace Corral.Cli.Tests;

/// <summary><c>--report FILE</c>: the outcome as camelCase JSON with every documented field.</summary>
public sealed class RunReportTests
{
    [Theory(Timeout = 120_000)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Report_describes_the_run_and_names_the_killed_escapee(bool fallback)
    {
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");
        string script = $"setsid sleep 300 & echo $! > {scratch.File("escapee.pid")}; printf hello; printf oops >&2; exit 3";
        string[] args = fallback
            ? ["run", "--fallback", "--report", report, "--", "/bin/sh", "-c", script]
            : ["run", "--report", report, "--", "/bin/sh", "-c", script];

        var run = await CorralCli.RunAsync(args);

        Assert.Equal(3, run.ExitCode);
        int escapee = await scratch.PidAsync("escapee.pid");
        var json = Report.Load(report);
        var expected = fallback ? ContainmentKind.Session : await HostContainment.AutoAsync();

        Assert.Equal(3, Number(json, "exitCode"));
        Assert.Equal(JsonValueKind.Null, json.GetProperty("signal").ValueKind);
        Assert.Equal("exited", String(json, "reason"));
        Assert.Equal(HostContainment.JsonName(expected), String(json, "containment"));
        Assert.Equal(3, Number(json, "shellExitCode"));
        Assert.True(Number(json, "pid") > 0);
        Assert.Matches("^[0-9a-f]{32}$", String(json, "treeId"));
        Assert.Equal(["/bin/sh", "-c", script], json.GetProperty("command").EnumerateArray().Select(e => e.GetString()));

        double duration = Double(json, "durationMs"), drain = Double(json, "drainAfterExitMs"), teardown = Double(json, "teardownMs");
        Assert.InRange(drain, 0, 2_000);
        Assert.InRange(duration, drain, 60_000);
        Assert.InRange(teardown, 0, duration);
        var started = Time(json, "startedAt");
        var exited = Time(json, "exitedAt");
        var completed = Time(json, "completedAt");
        Assert.True(started <= exited && exited <= completed);

        Assert.Equal(5, Number(json, "stdoutBytes"));
        Assert.Equal(4, Number(json, "stderrBytes"));
        Assert.False(Bool(json, "stdoutTruncated"));
        Assert.False(Bool(json, "stderrTruncated"));
        Assert.False(Bool(json, "holderSurvived"));

        var killed = json.GetProperty("killed").EnumerateArray().ToArray();
        var entry = Assert.Single(killed, k => k.GetProperty("pid").GetInt32() == escapee);
        Assert.Contains("sleep 300", entry.GetProperty("command").GetString());
        string foundBy = entry.GetProperty("foundBy").GetString()!;
        if (expected == ContainmentKind.Cgroup)
            Assert.Equal("cgroup", foundBy);
        else
            Assert.Contains(foundBy, new[] { "processGroup", "pipeHolder", "environmentTag" });
        Assert.All(killed, k => Assert.Contains(k.GetProperty("foundBy").GetString(), new[] { "cgroup", "processGroup", "pipeHolder", "environmentTag" }));

        Assert.False(Proc.IsAlive(escapee));

        // The receipt: every field present; CPU time known where a leaf counted it; nothing was limited.
        var resources = json.GetProperty("resources");
        Assert.Equal(["memoryPeakBytes", "cpuUserMs", "cpuSystemMs", "pidsPeak", "oomKills", "limitHit", "enforced"],
            resources.EnumerateObject().Select(p => p.Name));
        Assert.Equal(expected == ContainmentKind.Cgroup ? JsonValueKind.Number : JsonValueKind.Null, resources.GetProperty("cpuUserMs").ValueKind);
        Assert.Equal(JsonValueKind.Null, resources.GetProperty("limitHit").ValueKind);
        var enforced = resources.GetProperty("enforced");
        Assert.Equal(["memory", "pids", "cpu"], enforced.EnumerateObject().Select(p => p.Name));
        Assert.All(enforced.EnumerateObject(), p => Assert.Equal(JsonValueKind.False, p.Value.ValueKind));
    }

    [Fact(Timeout = 120_000)]
    public async Task Report_after_a_forwarded_signal_says_canceled_and_names_the_signal()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var tree = CorralCli.Start(["run", "--report", report, "--", "/bin/sh", "-c", $"echo $$ > {scratch.File("child.pid")}; exec sleep 300"]);
        await scratch.PidAsync("child.pid");

        Assert.True(Proc.Signal(tree.Pid, Proc.SIGTERM));
        var run = await CorralCli.FinishAsync(tree, clock);

        Assert.Equal(143, run.ExitCode);
        var json = Report.Load(report);
        Assert.Equal("canceled", String(json, "reason"));
        Assert.Equal(15, Number(json, "signal"));
        Assert.Equal(JsonValueKind.Null, json.GetProperty("exitCode").ValueKind);
        Assert.Equal(143, Number(json, "shellExitCode"));
    }

    [Fact(Timeout = 120_000)]
    public async Task Report_dash_goes_to_stderr_leaving_stdout_to_the_child()
    {
        var run = await CorralCli.RunAsync(["run", "--report", "-", "--", "/bin/sh", "-c", "echo hi; exit 4"]);

        Assert.Equal(4, run.ExitCode);
        Assert.Equal("hi\n", run.StdoutText);
        using var json = JsonDocument.Parse(run.Stderr);
        Assert.Equal(4, json.RootElement.GetProperty("exitCode").GetInt32());
        Assert.Equal(3, json.RootElement.GetProperty("stdoutBytes").GetInt32());
    }

    [Fact(Timeout = 120_000)]
    public async Task Detached_escapee_is_left_running_and_reported_as_a_surviving_holder()
    {
        using var scratch = new Scratch("corral-cli-test-");
        string report = scratch.File("report.json");

        var run = await CorralCli.RunAsync(["run", "--linger", "detach", "--report", report, "--",
            "/bin/sh", "-c", $"setsid sleep 300 & echo $! > {scratch.File("escapee.pid")}; echo hi"]);

        Assert.Equal(0, run.ExitCode);
        Assert.Equal("hi\n", run.StdoutText);
        int escapee = await scratch.PidAsync("escapee.pid");
        Assert.True(Proc.IsAlive(escapee), "a detached escapee must be left alone");
        var json = Report.Load(report);
        Assert.True(Bool(json, "holderSurvived"));
        Assert.Empty(json.GetProperty("killed").EnumerateArray());
        // Scratch.Dispose kills the escapee.
    }

    private static int Number(JsonElement json, string name)
    {
        var value = json.GetProperty(name);
        Assert.Equal(JsonValueKind.Number, value.ValueKind);
        return value.GetInt32();
    }

    private static double Double(JsonElement json, string name)
    {
        var value = json.GetProperty(name);
        Assert.Equal(JsonValueKind.Number, value.ValueKind);
        return value.GetDouble();
    }

    private static string String(JsonElement json, string name)
    {
        var value = json.GetProperty(name);
        Assert.Equal(JsonValueKind.String, value.ValueKind);
        return value.GetString()!;
    }

    private static bool Bool(JsonElement json, string name)
    {
        var value = json.GetProperty(name);
        Assert.True(value.ValueKind is JsonValueKind.True or JsonValueKind.False, $"{name} is {value.ValueKind}");
        return value.GetBoolean();
    }

    private static DateTimeOffset Time(JsonElement json, string name) =>
        DateTimeOffset.Parse(String(json, name), System.Globalization.CultureInfo.InvariantCulture);
}
