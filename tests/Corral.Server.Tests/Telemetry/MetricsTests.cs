using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Telemetry;

/// <summary><c>/metrics</c>: the task counters move by exactly what the tasks' records say happened.</summary>
public sealed class MetricsTests
{
    private const string Agent = "command";

    [Fact(Timeout = 180_000)]
    public async Task The_task_counters_move_by_exactly_what_happened()
    {
        await using var server = await TestServer.StartAsync();
        // Another server in the same process: its tasks are counted by its own /metrics, never by ours.
        await using var neighbour = await TestServer.StartAsync();
        var before = await Scrape.TakeAsync(server.Http);
        var neighbourBefore = await Scrape.TakeAsync(neighbour.Http);

        var records = new List<JsonNode>();
        async Task RunAsync(params string[] command) =>
            records.Add((await server.Http.CreateAsync(new { agent = Agent, command }, wait: 60)).Body!);
        await RunAsync("echo", "one");
        await RunAsync("echo", "two");
        await RunAsync("bash", "-c", "exit 3");
        await RunAsync("bash", "-c", "echo out; setsid sleep 30 & exit 0"); // an escapee, killed at the end
        var claude = (await server.Http.ClaudeAsync("hello")).Body!; // a cost to count

        // A long task: counted running while it runs, then cancelled.
        var slow = await server.Http.CreateAsync(new { agent = Agent, command = new[] { "sleep", "30" } });
        await server.Http.WaitForAsync(slow.Id!, r => r["status"]!.GetValue<string>() == "running");
        var during = await Scrape.TakeAsync(server.Http);
        Assert.Equal(1, during.Sum("corral_tasks_running", ("agent", Agent)));
        Assert.Equal(0, during.Sum("corral_tasks_queued", ("agent", Agent)));
        await server.Http.CancelAsync(slow.Id!);
        records.Add(await server.Http.WaitForEndAsync(slow.Id!));

        // Refused before a task exists: an unknown agent twice, a command agent without its command once.
        for (int i = 0; i < 2; i++)
            Assert.Equal(HttpStatusCode.BadRequest, (await server.Http.CreateAsync(new { agent = "no-such-agent" })).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await server.Http.CreateAsync(new { agent = Agent })).Status);
        Assert.Equal(HttpStatusCode.OK, (await neighbour.Http.CreateAsync(new { agent = Agent, command = new[] { "echo", "elsewhere" } }, wait: 60)).Status);

        // A task's end is told to the observers just after its waiters hear of it: wait for the last one to be counted.
        var all = records.Append(claude).ToList();
        var after = await Scrape.WaitAsync(server.Http, s => Delta(s, before, "corral_tasks_finished_total") >= all.Count,
            TimeSpan.FromSeconds(30), "every end counted");
        double D(string name, params (string, string)[] labels) => Delta(after, before, name, labels);

        Assert.Equal(records.Count, D("corral_tasks_started_total", ("agent", Agent)));
        Assert.Equal(all.Count, D("corral_tasks_finished_total"));
        Assert.Equal(1, D("corral_tasks_started_total", ("agent", "claude-code")));
        Assert.Equal(1, D("corral_tasks_finished_total", ("agent", "claude-code"), ("status", "succeeded")));
        Assert.Equal(claude["costUsd"]!.GetValue<double>(), D("corral_task_cost_usd_total", ("agent", "claude-code")), 9);
        Assert.Equal(0, D("corral_task_cost_usd_total", ("agent", Agent)));
        foreach (var group in records.GroupBy(r => (Status: r["status"]!.GetValue<string>(), Code: r["error"]?["code"]?.GetValue<string>())))
        {
            var labels = new List<(string, string)> { ("agent", Agent), ("status", group.Key.Status) };
            if (group.Key.Code is { } code)
                labels.Add(("error_code", code));
            Assert.Equal(group.Count(), D("corral_tasks_finished_total", [.. labels]));
            Assert.Equal(group.Count(), D("corral_task_duration_seconds_count", ("agent", Agent), ("status", group.Key.Status)));
            Assert.Equal(group.Sum(r => r["durationMs"]!.GetValue<long>()) / 1000.0,
                D("corral_task_duration_seconds_sum", ("agent", Agent), ("status", group.Key.Status)), 6);
        }

        Assert.Equal(["cancelled", "failed", "succeeded"], records.Select(r => r["status"]!.GetValue<string>()).Distinct().Order());
        Assert.Equal(records.Count, D("corral_task_queue_wait_seconds_count", ("agent", Agent)));
        Assert.Equal(all.Count, D("corral_task_drain_after_exit_seconds_count"));
        Assert.Equal(all.Sum(r => r["process"]!["drainAfterExitMs"]!.GetValue<double>()) / 1000.0,
            D("corral_task_drain_after_exit_seconds_sum"), 3);

        var killed = all.SelectMany(r => r["process"]!["killed"]!.AsArray().Select(k => (Task: r, Killed: k!))).ToList();
        var escapees = killed.Where(k => k.Killed["pid"]!.GetValue<int>() != k.Task["process"]!["pid"]!.GetValue<int>()).ToList();
        Assert.NotEmpty(escapees); // the setsid sleep
        foreach (var foundBy in killed.Select(k => k.Killed["foundBy"]!.GetValue<string>()).Distinct())
        {
            Assert.Equal(killed.Count(k => k.Killed["foundBy"]!.GetValue<string>() == foundBy), D("corral_processes_killed_total", ("found_by", foundBy)));
            Assert.Equal(escapees.Count(k => k.Killed["foundBy"]!.GetValue<string>() == foundBy), D("corral_escapees_killed_total", ("found_by", foundBy)));
        }

        Assert.Equal(killed.Count, D("corral_processes_killed_total"));
        Assert.Equal(escapees.Count, D("corral_escapees_killed_total"));
        Assert.Equal(all.Count(r => r["process"]!["holderSurvived"]!.GetValue<bool>()), D("corral_holders_survived_total"));

        Assert.Equal(2, D("corral_admission_refusals_total", ("agent", "unknown"), ("reason", "invalid_request")));
        Assert.Equal(1, D("corral_admission_refusals_total", ("agent", Agent), ("reason", "invalid_request")));
        Assert.Equal(3, D("corral_admission_refusals_total"));
        Assert.Equal(0, after.Sum("corral_tasks_running", ("agent", Agent)));

        // The neighbour counted its own task, and only it.
        var neighbourAfter = await Scrape.WaitAsync(neighbour.Http, s => Delta(s, neighbourBefore, "corral_tasks_finished_total") >= 1,
            TimeSpan.FromSeconds(30), "the neighbour's task counted");
        Assert.Equal(1, Delta(neighbourAfter, neighbourBefore, "corral_tasks_finished_total"));
        Assert.Equal(0, Delta(neighbourAfter, neighbourBefore, "corral_admission_refusals_total"));

        // The framework's meters are there too: requests, connections, the runtime.
        Assert.True(after.Sum("http_server_request_duration_seconds_count") > before.Sum("http_server_request_duration_seconds_count"));
        Assert.True(after.Has("kestrel_active_connections"));
        Assert.True(after.Has("dotnet_gc_collections_total"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Metrics_need_the_token_unless_configured_public()
    {
        const string token = "metrics-test-token";
        await using (var server = await TestServer.StartAsync(token: token))
        {
            using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/metrics")).StatusCode);
            var scrape = await Scrape.TakeAsync(server.Http);
            Assert.True(scrape.Has("corral_tasks_running"));
        }

        await using (var server = await TestServer.StartAsync(s => s["Corral:Metrics:Public"] = "true", token: token))
        {
            using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };
            Assert.True(Scrape.Parse(await anonymous.GetStringAsync("/metrics")).Has("corral_tasks_queued"));
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/v1/tasks")).StatusCode);
            Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/metrics-and-more")).StatusCode);
        }
    }

    private static double Delta(Scrape after, Scrape before, string name, params (string, string)[] labels) =>
        after.Sum(name, labels) - before.Sum(name, labels);
}
