using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Internal.Storage.Journal;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Recovery;

/// <summary>What a crash or a shutdown leaves behind: interrupted records, intact logs, and no process.</summary>
public sealed class RestartTests
{
    [Fact(Timeout = 120_000)]
    public async Task After_kill_9_of_the_server_the_next_start_marks_the_task_interrupted_and_kills_its_tree()
    {
        string data = Directory.CreateTempSubdirectory("corral-restart-").FullName;
        string workdir = Directory.CreateTempSubdirectory("corral-restart-work-").FullName;
        var pids = new List<int>();
        var identities = new List<Proc.Identity?>();
        ServerProcess? first = null, second = null;
        try
        {
            first = await ServerProcess.StartAsync(data);
            var created = await first.Http.CreateAsync(new { agent = "claude-code", prompt = "hang", workdir });
            Assert.Equal(HttpStatusCode.Accepted, created.Status);
            string id = created.Id!;
            string pidFile = Path.Combine(workdir, "pids.txt");
            await Proc.WaitForAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).Contains(' '), TimeSpan.FromSeconds(30), "the agent to start");
            pids.AddRange(File.ReadAllText(pidFile).Split(' ').Select(int.Parse));
            identities.AddRange(pids.Select(Proc.Identify));
            await first.Http.WaitForAsync(id, t => t["status"]!.GetValue<string>() == "running");
            // Output is on disk first, then its events are committed: wait for the event before the crash.
            await Proc.WaitForAsync(async () => (await first.Http.ReadEventsAsync(id, stopAfter: 4)).Any(e => e.Name == "agent.text"), TimeSpan.FromSeconds(30), "the agent.text event");

            first.Kill();
            Assert.All(pids, p => Assert.True(Proc.IsAlive(p), $"pid {p} should outlive the crashed server (that is what recovery is for)"));

            second = await ServerProcess.StartAsync(data);
            var task = (await second.Http.GetTaskAsync(id)).Body!;
            Assert.Equal("interrupted", task["status"]!.GetValue<string>());
            Assert.Equal("interrupted", task["error"]!["code"]!.GetValue<string>());
            foreach (int pid in pids)
                await Proc.WaitForAsync(() => !Proc.IsAlive(pid), TimeSpan.FromSeconds(15), $"pid {pid} to be gone");
            var killed = task["process"]!["killed"]!.AsArray().Select(k => k!["pid"]!.GetValue<int>()).ToList();
            Assert.All(pids, p => Assert.Contains(p, killed));

            // The record says what the journal knew: the command, the output that reached it, when the run started.
            var process = task["process"]!;
            Assert.Equal("fake-claude.js", Path.GetFileName(process["command"]!.AsArray()[0]!.GetValue<string>()));
            byte[] stdout = await second.Http.GetByteArrayAsync($"/v1/tasks/{id}/output?stream=stdout");
            byte[] stderr = await second.Http.GetByteArrayAsync($"/v1/tasks/{id}/output?stream=stderr");
            Assert.NotEmpty(stdout);
            Assert.Equal(stdout.Length, process["stdoutBytes"]!.GetValue<long>());
            Assert.Equal(stderr.Length, process["stderrBytes"]!.GetValue<long>());
            Assert.Equal(stdout.Length + stderr.Length, task["output"]!["storedBytes"]!.GetValue<long>());
            Assert.True(task["durationMs"]!.GetValue<long>() >= 0);
            Assert.Equal(task["startedAt"]!.GetValue<DateTimeOffset>(), process["startedAt"]!.GetValue<DateTimeOffset>());
            // Its child was killed at start-up, by SIGKILL: its status is that, not a made-up exit code.
            Assert.Contains(process["pid"]!.GetValue<int>(), killed);
            Assert.Equal(9, process["signal"]!.GetValue<int>());
            Assert.Equal(137, process["shellExitCode"]!.GetValue<int>());

            // The logs are intact and the event stream ends properly.
            var events = await second.Http.ReadEventsAsync(id);
            Assert.Equal(["task.status", "task.status", "agent.init", "agent.text", "task.status", "task.result", "task.end"], events.Select(e => e.Name));
            Assert.Equal("interrupted", events[^1].Data!["status"]!.GetValue<string>());
            Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long?)i), events.Select(e => e.Id));
            string transcript = await second.Http.GetStringAsync($"/v1/tasks/{id}/transcript");
            Assert.Equal(["system", "assistant"], transcript.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!["type"]!.GetValue<string>()));

            // The restarted server works.
            Assert.Equal(HttpStatusCode.OK, (await second.Http.ClaudeAsync("hello")).Status);
        }
        finally
        {
            first?.Kill();
            second?.Kill();
            identities.ForEach(Proc.KillIfAlive);
            Directory.Delete(workdir, true);
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Tasks_whose_journals_cannot_be_written_after_a_crash_are_still_recorded_interrupted_running_or_queued()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Making a file immutable (chattr +i) needs root (CI runs as root).");
        string data = Directory.CreateTempSubdirectory("corral-restart-immutable-").FullName;
        ServerProcess? first = null, second = null;
        var journals = new List<string>();
        try
        {
            first = await ServerProcess.StartAsync(data, s => s["Corral:MaxConcurrentTasks"] = "1");
            string running = (await first.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } })).Id!;
            // Its tree runs, so its start is in the journal.
            await Proc.WaitForAsync(async () => (await first.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{running}/processes")).Body?["processes"]?.AsArray().Count > 0,
                TimeSpan.FromSeconds(30), "the task's tree");
            string queued = (await first.Http.CreateAsync(new { agent = "command", command = new[] { "true" } })).Id!;
            Assert.Equal("queued", (await first.Http.GetTaskAsync(queued)).Body!["status"]!.GetValue<string>());
            first.Kill();
            foreach (string id in new[] { running, queued })
            {
                string journal = Path.Combine(data, "tasks", id, "journal");
                Proc.Run("chattr", "+i", journal); // not even root may open it for writing now
                journals.Add(journal);
            }

            second = await ServerProcess.StartAsync(data);
            // Before, each row stayed as it was for good (running or queued): cancel did nothing and DELETE answered 409.
            foreach (string id in new[] { running, queued })
            {
                var task = await second.Http.WaitForAsync(id, t => t["status"]!.GetValue<string>() is not ("queued" or "running"), TimeSpan.FromSeconds(30), "the task to be settled");
                Assert.Equal("interrupted", task["status"]!.GetValue<string>());
            }

            journals.ForEach(j => Proc.Run("chattr", "-i", j));
            journals.Clear();
            Assert.Equal(HttpStatusCode.NoContent, (await second.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{running}")).Status);
        }
        finally
        {
            journals.ForEach(j => Proc.Run("chattr", "-i", j));
            first?.Kill();
            second?.Kill();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_graceful_stop_interrupts_running_tasks_through_the_ladder_and_records_them()
    {
        using var data = new Scratch("corral-stop-");
        string id;
        await using (var server = await TestServer.StartAsync(dataDirectory: data))
        {
            var r = await server.Http.ClaudeAsync("slow", wait: null);
            id = r.Id!;
            await server.Http.ReadEventsAsync(id, stopAfter: 3);

            // A client following the events and one waiting for the outcome are both still connected.
            var follower = server.Http.ReadEventsAsync(id);
            var waiter = server.Http.ClaudeAsync("slow", wait: 120);
            await Proc.WaitForAsync(() => server.Http.SendAsync(HttpMethod.Get, "/v1/tasks?status=running").Result.Body!["items"]!.AsArray().Count == 2,
                TimeSpan.FromSeconds(30), "both tasks running");
            var clock = Stopwatch.StartNew();
            await server.StopAsync();
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"stopping took {clock.Elapsed}");
            var followed = await follower;
            Assert.Equal("task.end", followed[^1].Name);
            Assert.Equal("interrupted", followed[^1].Data!["status"]!.GetValue<string>());
            var waited = await waiter;
            Assert.Equal(HttpStatusCode.ServiceUnavailable, waited.Status);
            Assert.Equal("interrupted", waited.TaskStatus);
        }

        await using var again = await TestServer.StartAsync(dataDirectory: data);
        var task = (await again.Http.GetTaskAsync(id)).Body!;
        Assert.Equal("interrupted", task["status"]!.GetValue<string>());
        Assert.Equal("error_during_execution", task["result"]!["subtype"]!.GetValue<string>()); // the interrupt kept the result
        var events = await again.Http.ReadEventsAsync(id);
        Assert.Single(events, e => e.Name == "task.end");
        Assert.Equal("task.end", events[^1].Name);
    }

    [Fact(Timeout = 120_000)]
    public async Task After_kill_9_a_task_cut_off_by_its_output_cap_is_recorded_with_the_bytes_the_cap_dropped()
    {
        string data = Directory.CreateTempSubdirectory("corral-restart-drops-").FullName;
        ServerProcess? first = null, second = null;
        try
        {
            first = await ServerProcess.StartAsync(data);
            // 5,000 bytes, then one more well after the journal's last note of drops, then silence until the crash.
            var created = await first.Http.CreateAsync(new
            {
                agent = "command",
                command = new[] { "bash", "-c", "head -c 5000 /dev/zero; sleep 1.5; printf x; exec sleep 300" },
                limits = new { maxOutputBytes = 1000 },
            });
            string id = created.Id!;
            string journal = Path.Combine(data, "tasks", id);
            await Proc.WaitForAsync(() => JournalFacts.Of(new JournalReader(journal)).Dropped.Stdout == 4001, TimeSpan.FromSeconds(30), "the journal to note 4,001 dropped bytes");

            first.Kill();
            second = await ServerProcess.StartAsync(data);
            var task = (await second.Http.GetTaskAsync(id)).Body!;
            Assert.Equal("interrupted", task["status"]!.GetValue<string>());
            Assert.Equal(1000, task["output"]!["storedBytes"]!.GetValue<long>());
            Assert.Equal(4001, task["output"]!["droppedBytes"]!.GetValue<long>());
            Assert.Equal(5001, task["process"]!["stdoutBytes"]!.GetValue<long>());
            Assert.True(task["process"]!["stdoutTruncated"]!.GetValue<bool>());
            Assert.False(task["process"]!["stderrTruncated"]!.GetValue<bool>());
            Assert.Equal(1000, (await second.Http.GetByteArrayAsync($"/v1/tasks/{id}/output?stream=stdout")).Length);
        }
        finally
        {
            first?.Kill();
            second?.Kill();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task Tasks_that_never_started_are_queued_again_after_a_crash_and_run()
    {
        string data = Directory.CreateTempSubdirectory("corral-requeue-").FullName;
        ServerProcess? first = null, second = null;
        try
        {
            // An operator's secret too: a request that holds its value is stored masked.
            void Configure(Dictionary<string, string> s)
            {
                s["Corral:MaxConcurrentTasks"] = "1";
                s["Corral:Command:Secrets:OPS"] = "opsvalue123";
            }

            first = await ServerProcess.StartAsync(data, Configure);
            var running = await first.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "300" } });
            await first.Http.WaitForAsync(running.Id!, t => t["status"]!.GetValue<string>() == "running");
            var queued = new List<string>();
            for (int i = 0; i < 3; i++)
            {
                var q = await first.Http.CreateAsync(new { agent = "command", command = new[] { "echo", $"queued {i}" } });
                Assert.Equal("queued", q.TaskStatus);
                queued.Add(q.Id!);
            }

            var withSecret = await first.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, secrets = new { KEY = "a-secret-value" } });
            Assert.Equal("queued", withSecret.TaskStatus);
            var withValue = await first.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "opsvalue123-arg" } });
            Assert.Equal("queued", withValue.TaskStatus);
            // Text that only looks like a placeholder is the request's own: it runs.
            var lookalike = await first.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "[secret:NOT_A_SECRET]" } });
            Assert.Equal("queued", lookalike.TaskStatus);

            first.Kill();
            second = await ServerProcess.StartAsync(data, Configure);
            Assert.Equal("interrupted", (await second.Http.GetTaskAsync(running.Id!)).TaskStatus);
            for (int i = 0; i < 3; i++)
            {
                var end = await second.Http.WaitForEndAsync(queued[i]);
                Assert.Equal("succeeded", end["status"]!.GetValue<string>());
                Assert.Equal($"queued {i}\n", end["result"]!["text"]!.GetValue<string>());
            }

            var events = await second.Http.ReadEventsAsync(queued[0]);
            Assert.Equal(["task.status", "task.status", "output", "task.status", "task.result", "task.end"], events.Select(e => e.Name));

            // Its secret was never stored: it cannot run as it was asked to, so it is not run at all.
            var secretTask = (await second.Http.GetTaskAsync(withSecret.Id!)).Body!;
            Assert.Equal("interrupted", secretTask["status"]!.GetValue<string>());
            Assert.Contains("secrets", secretTask["error"]!["message"]!.GetValue<string>());
            // Nor is one whose stored request had a secret's value masked: it would run with "[secret:OPS]-arg".
            var masked = (await second.Http.GetTaskAsync(withValue.Id!)).Body!;
            Assert.Equal("interrupted", masked["status"]!.GetValue<string>());
            Assert.Null(masked["result"]);
            Assert.Equal("[secret:NOT_A_SECRET]\n", (await second.Http.WaitForEndAsync(lookalike.Id!))["result"]!["text"]!.GetValue<string>());
        }
        finally
        {
            first?.Kill();
            second?.Kill();
            Directory.Delete(data, true);
        }
    }
}
