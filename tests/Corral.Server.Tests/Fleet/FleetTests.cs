using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;
using Corral.Testing.Support.Postgres;

namespace Corral.Server.Tests.Fleet;

/// <summary>One real PostgreSQL for the fleet tests (each test gets a database of its own).</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresCluster? _cluster;

    public PostgresCluster Cluster => _cluster ?? throw new InvalidOperationException(PostgresCluster.Unavailable);

    public async ValueTask InitializeAsync()
    {
        if (PostgresCluster.Unavailable is null)
            _cluster = await PostgresCluster.StartAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (_cluster is not null)
            await _cluster.DisposeAsync();
    }
}

/// <summary>
/// Several real nodes (server processes) on one real PostgreSQL: tasks placed on whichever node has room, followed,
/// cancelled and read from any node, and recorded truthfully when a node dies, freezes or loses the database.
/// </summary>
public sealed class FleetTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IAsyncDisposable
{
    private const int SIGSTOP = 19;
    private const int SIGCONT = 18;

    private readonly List<ServerProcess> _nodes = [];
    private readonly List<string> _directories = [];
    private readonly List<Proc.Identity?> _processes = [];

    [Fact(Timeout = 180_000)]
    public async Task Tasks_sent_to_any_node_spread_over_the_fleet_and_keys_and_sessions_hold_fleet_wide()
    {
        string db = await DatabaseAsync();
        // As root, the default isolation: every task a uid of its own, leased host-wide, so three nodes on one host never share one.
        bool root = Environment.UserName == "root";
        void Configure(Dictionary<string, string> s)
        {
            s["Corral:MaxConcurrentTasks"] = "2";
            if (root)
                s.Remove("Corral:Isolation:User");
        }

        var nodes = new[] { await NodeAsync(db, "a", Configure), await NodeAsync(db, "b", Configure), await NodeAsync(db, "c", Configure) };
        var ids = new List<string>();
        for (int i = 0; i < 12; i++)
        {
            var created = await nodes[i % 3].Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"sleep 0.5; echo done-{i}" } });
            Assert.Equal(HttpStatusCode.Accepted, created.Status);
            ids.Add(created.Id!);
        }

        var ranOn = new List<string>();
        for (int i = 0; i < ids.Count; i++)
        {
            var ended = await nodes[(i + 1) % 3].Http.WaitForEndAsync(ids[i], TimeSpan.FromSeconds(60));
            Assert.True("succeeded" == ended["status"]!.GetValue<string>(), ended.ToJsonString());
            Assert.Equal(root, ended["uid"] is not null);
            ranOn.Add(ended["node"]!.GetValue<string>());
            Assert.Equal($"done-{i}\n", await nodes[(i + 2) % 3].Http.GetStringAsync($"/v1/tasks/{ids[i]}/output"));
        }

        // Two slots per node, twelve tasks queued at once: every node took some.
        Assert.Equal(["a", "b", "c"], ranOn.Distinct().Order());
        var page = (await nodes[1].Http.SendAsync(HttpMethod.Get, "/v1/tasks?limit=100")).Body!;
        Assert.Equal(12, page["items"]!.AsArray().Count);
        // ?node= lists what one node ran, on the database's side (the dashboard's node filter pages with it).
        var onB = (await nodes[0].Http.SendAsync(HttpMethod.Get, "/v1/tasks?limit=100&node=b")).Body!["items"]!.AsArray();
        Assert.Equal(ranOn.Count(n => n == "b"), onB.Count);
        Assert.All(onB, t => Assert.Equal("b", t!["node"]!.GetValue<string>()));

        // ?wait on a node that may not run the task itself.
        var waited = await nodes[0].Http.CreateAsync(new { agent = "command", command = new[] { "echo", "waited" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, waited.Status);
        Assert.Equal("succeeded", waited.TaskStatus);

        // An idempotency key is the fleet's: the same task from another node, a conflict with another body.
        var keyed = new { agent = "command", command = new[] { "echo", "once" }, idempotencyKey = "fleet-key" };
        var first = await nodes[0].Http.CreateAsync(keyed);
        var again = await nodes[1].Http.CreateAsync(keyed);
        Assert.Equal(HttpStatusCode.OK, again.Status);
        Assert.Equal(first.Id, again.Id);
        var other = await nodes[2].Http.CreateAsync(new { agent = "command", command = new[] { "echo", "twice" }, idempotencyKey = "fleet-key" });
        Assert.Equal(HttpStatusCode.Conflict, other.Status);
        Assert.Equal("idempotency_conflict", other.ErrorCode);

        // One queued or running task per session, fleet-wide.
        var holding = await nodes[0].Http.CreateAsync(new { agent = "claude-code", prompt = "hang", resumeSessionId = "fleet-session" });
        Assert.Equal(HttpStatusCode.Accepted, holding.Status);
        var busy = await nodes[1].Http.CreateAsync(new { agent = "claude-code", prompt = "hello", resumeSessionId = "fleet-session" });
        Assert.Equal(HttpStatusCode.Conflict, busy.Status);
        Assert.Equal("session_busy", busy.ErrorCode);
        await nodes[2].Http.WaitForAsync(holding.Id!, t => t["status"]!.GetValue<string>() == "running");
        await nodes[2].Http.CancelAsync(holding.Id!);
        Assert.Equal("cancelled", (await nodes[1].Http.WaitForEndAsync(holding.Id!))["status"]!.GetValue<string>());
        var resumed = await nodes[1].Http.CreateAsync(new { agent = "claude-code", prompt = "hello", resumeSessionId = "fleet-session" }, wait: 30);
        Assert.Equal("succeeded", resumed.TaskStatus);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_task_created_on_one_node_is_followed_and_cancelled_from_another_while_a_third_runs_it()
    {
        string db = await DatabaseAsync();
        // Only c has the memory for the task's limit, so c runs it whoever receives it.
        var a = await NodeAsync(db, "a", Small);
        var b = await NodeAsync(db, "b", Small);
        var c = await NodeAsync(db, "c");
        using var feed = await FeedReader.OpenAsync(b.Http); // b neither accepts nor runs the task, and sees it all
        var created = await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "while :; do echo tick; sleep 0.1; done" },
            limits = new { memoryMaxMb = 300 },
        });
        Assert.Equal(HttpStatusCode.Accepted, created.Status);
        string id = created.Id!;
        var follower = b.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(120));
        await Proc.WaitForAsync(async () => (await b.Http.ReadEventsAsync(id, stopAfter: 6, deadline: TimeSpan.FromSeconds(30))).Count(e => e.Name == "output") >= 3,
            TimeSpan.FromSeconds(60), "output to reach b");
        Assert.Equal("c", (await b.Http.GetTaskAsync(id)).Body!["node"]!.GetValue<string>());
        var local = (await c.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{id}/processes")).Body!;
        Assert.NotEmpty(local["processes"]!.AsArray());
        // Another node asks c for the tree: the same processes, the loop's bash among them.
        var remote = (await a.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{id}/processes")).Body!;
        Assert.True(remote["running"]!.GetValue<bool>());
        int bash = local["processes"]!.AsArray().Single(p => p!["command"]!.GetValue<string>().Contains("bash -c while"))!["pid"]!.GetValue<int>();
        Assert.True(remote["processes"]!.AsArray().Any(p => p!["pid"]!.GetValue<int>() == bash), remote.ToJsonString());

        var cancelled = await b.Http.CancelAsync(id);
        Assert.Equal(HttpStatusCode.Accepted, cancelled.Status);
        var events = await follower;
        Assert.Equal("task.end", events[^1].Name);
        Assert.Equal("cancelled", events[^1].Data!["status"]!.GetValue<string>());
        Assert.Contains(events, e => e.Name == "output" && e.Data!["text"]!.GetValue<string>() == "tick");
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long?)i), events.Select(e => e.Id));
        var fed = (await feed.ReadUntilAsync((name, t) => name == "task.ended" && t["id"]!.GetValue<string>() == id)).Where(e => e.Data["id"]!.GetValue<string>() == id).ToList();
        Assert.Equal(["task.accepted", "task.started", "task.ended"], fed.Select(e => e.Name));
        Assert.Equal("c", fed[^1].Data["node"]!.GetValue<string>());

        // Replay from any node, from any point; the transcript and output too.
        var replay = await a.Http.ReadEventsAsync(id, lastEventId: 3);
        Assert.Equal(events.Skip(3).Select(e => e.Id), replay.Select(e => e.Id));
        string output = await a.Http.GetStringAsync($"/v1/tasks/{id}/output");
        Assert.StartsWith("tick\ntick\n", output);
        Assert.Equal("cancelled", (await a.Http.GetTaskAsync(id)).Body!["status"]!.GetValue<string>());

        // A queued task is cancelled by whichever node is asked, at once.
        var waiting = await a.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "never" }, limits = new { memoryMaxMb = 100_000 } });
        var gone = await b.Http.CancelAsync(waiting.Id!);
        Assert.Equal(HttpStatusCode.OK, gone.Status);
        Assert.Equal("cancelled", gone.TaskStatus);
        Assert.Equal("task.end", (await c.Http.ReadEventsAsync(waiting.Id!))[^1].Name);

        // And a finished task is deleted from any node.
        Assert.Equal(HttpStatusCode.NoContent, (await a.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{id}")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await c.Http.GetTaskAsync(id)).Status);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_node_killed_mid_task_is_declared_interrupted_within_a_lease_and_kills_its_leftovers_when_it_is_back()
    {
        string db = await DatabaseAsync();
        string dataA = Scratch("corral-fleet-a-");
        string work = Scratch("corral-fleet-work-");
        var a = await NodeAsync(db, "a", s => s["Corral:MaxConcurrentTasks"] = "1", dataA);
        var b = await NodeAsync(db, "b", Small);
        var running = await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "setsid sleep 300 & echo $! > escapee; while :; do echo tick; sleep 0.1; done" },
            workdir = work,
            limits = new { memoryMaxMb = 300 },
        });
        string id = running.Id!;
        int escapee = await Proc.ReadPidFileAsync(Path.Combine(work, "escapee"), TimeSpan.FromSeconds(30));
        _processes.Add(Proc.Identify(escapee));
        // A task with secrets can run only where they are held: a's memory.
        var secret = await a.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "secret" }, secrets = new Dictionary<string, string> { ["TOKEN"] = "s3cr3t-value" } });
        Assert.Equal(HttpStatusCode.Accepted, secret.Status);
        var follower = b.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(120));
        await Proc.WaitForAsync(async () => (await b.Http.ReadEventsAsync(id, stopAfter: 8, deadline: TimeSpan.FromSeconds(30))).Count(e => e.Name == "output") >= 5,
            TimeSpan.FromSeconds(60), "output to reach b"); // half a second of output: the tree is in the database
        Assert.Equal("queued", (await b.Http.GetTaskAsync(secret.Id!)).Body!["status"]!.GetValue<string>());

        a.Kill();
        var clock = Stopwatch.StartNew();
        var ended = await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(30));
        var declared = clock.Elapsed;
        Assert.Equal("interrupted", ended["status"]!.GetValue<string>());
        Assert.Contains("stopped renewing", ended["error"]!["message"]!.GetValue<string>());
        // Lease 3 s (renewed each second) and a look each second: well within one lease period after the last renewal.
        Assert.True(declared < TimeSpan.FromSeconds(10), $"declared interrupted after {declared}");
        var events = await follower;
        Assert.Equal("task.end", events[^1].Name);
        Assert.Equal("interrupted", events[^1].Data!["status"]!.GetValue<string>());
        var lost = await b.Http.WaitForEndAsync(secret.Id!, TimeSpan.FromSeconds(30));
        Assert.Equal("interrupted", lost["status"]!.GetValue<string>());
        Assert.True(Proc.IsAlive(escapee), "the escapee outlives its killed node (that is what the restart is for)");

        var back = await NodeAsync(db, "a", null, dataA);
        await Proc.WaitForAsync(() => !Proc.IsAlive(escapee), TimeSpan.FromSeconds(30), "the restarted node to kill its leftover");
        var after = (await back.Http.GetTaskAsync(id)).Body!;
        Assert.Equal(ended.ToJsonString(), after.ToJsonString());
        Assert.Equal("succeeded", (await back.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30)).TaskStatus);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_node_killed_before_its_tree_reached_the_row_kills_the_leftovers_its_journal_names_when_it_is_back()
    {
        string db = await DatabaseAsync();
        string dataA = Scratch("corral-fleet-a-");
        string work = Scratch("corral-fleet-work-");
        var a = await NodeAsync(db, "a", null, dataA);
        var b = await NodeAsync(db, "b", Small);
        string id = (await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "setsid sleep 300 & echo $! > escapee; while :; do echo tick; sleep 0.1; done" },
            workdir = work,
            limits = new { memoryMaxMb = 300 },
        })).Id!;
        int escapee = await Proc.ReadPidFileAsync(Path.Combine(work, "escapee"), TimeSpan.FromSeconds(30));
        _processes.Add(Proc.Identify(escapee));
        await Proc.WaitForAsync(async () => (await b.Http.ReadEventsAsync(id, stopAfter: 5, deadline: TimeSpan.FromSeconds(30))).Count(e => e.Name == "output") >= 3,
            TimeSpan.FromSeconds(60), "output to reach b");

        a.Kill();
        // What the row would hold had a died before the write of its tree landed: only the journal names the tree.
        await SqlAsync(db, $"UPDATE tasks SET tree_id = NULL, cgroup_path = NULL, pid = NULL, uid = NULL WHERE id = '{id}'");
        Assert.Equal("interrupted", (await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(30)))["status"]!.GetValue<string>());
        Assert.True(Proc.IsAlive(escapee), "the escapee outlives its killed node");

        var back = await NodeAsync(db, "a", null, dataA);
        await Proc.WaitForAsync(() => !Proc.IsAlive(escapee), TimeSpan.FromSeconds(30), "the restarted node to kill the leftover its journal names");
        await Proc.WaitForAsync(() => back.Log.Contains("killed 1 leftover process"), TimeSpan.FromSeconds(10), "the node to say so");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_task_whose_node_died_is_recorded_with_its_process_and_the_output_its_journal_holds_and_the_cap_dropped()
    {
        string db = await DatabaseAsync();
        var a = await NodeAsync(db, "a");
        var b = await NodeAsync(db, "b", Small);
        // 5,000 bytes, then one more well after the journal's last note of drops, then silence until a dies.
        string id = (await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "head -c 5000 /dev/zero; sleep 1.5; printf x; exec sleep 300" },
            limits = new { maxOutputBytes = 1000, memoryMaxMb = 300 },
        })).Id!;
        await Proc.WaitForAsync(async () => await SqlAsync(db, $"SELECT coalesce(max(dropped_stdout), 0) FROM journal WHERE task_id = '{id}'") is 4001L,
            TimeSpan.FromSeconds(30), "the journal to note 4,001 dropped bytes");

        a.Kill();
        var ended = await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(30));
        Assert.True("interrupted" == ended["status"]!.GetValue<string>(), ended.ToJsonString());
        Assert.Equal(1000, ended["output"]!["storedBytes"]!.GetValue<long>());
        Assert.Equal(4001, ended["output"]!["droppedBytes"]!.GetValue<long>());
        Assert.Equal(1000, ended["output"]!["maxBytes"]!.GetValue<long>());
        var process = ended["process"]!;
        Assert.Equal(5001, process["stdoutBytes"]!.GetValue<long>());
        Assert.True(process["stdoutTruncated"]!.GetValue<bool>());
        Assert.Equal("bash", process["command"]![0]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(process["treeId"]!.GetValue<string>()));
        int pid = process["pid"]!.GetValue<int>();
        Assert.True(pid > 0);
        _processes.Add(Proc.Identify(pid)); // a's leftover, killed when the test ends
        Assert.Equal(ended.ToJsonString(), (await b.Http.GetTaskAsync(id)).Body!.ToJsonString());
    }

    [Fact(Timeout = 180_000)]
    public async Task Followers_on_every_node_of_a_task_whose_node_died_get_its_result_and_end_from_the_journal_even_when_they_come_after_the_row_ended()
    {
        string db = await DatabaseAsync();
        var a = await NodeAsync(db, "a");
        var b = await NodeAsync(db, "b", Small);
        var c = await NodeAsync(db, "c", Small);
        // The final events that the node ending the task appends after its row ended take 3 s to land (a slow database).
        await SqlAsync(db, """
            CREATE FUNCTION slow_end() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;
            CREATE TRIGGER slow_end BEFORE INSERT ON journal FOR EACH ROW
                WHEN (position('task.result'::bytea IN NEW.data) > 0) EXECUTE FUNCTION slow_end();
            """);
        string work = Scratch("corral-fleet-work-");
        string id = (await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "echo $$ > loop; while :; do echo tick; sleep 0.1; done" },
            workdir = work,
            limits = new { memoryMaxMb = 300 },
        })).Id!;
        _processes.Add(Proc.Identify(await Proc.ReadPidFileAsync(Path.Combine(work, "loop"), TimeSpan.FromSeconds(30)))); // a's leftover
        await Proc.WaitForAsync(async () => (await b.Http.ReadEventsAsync(id, stopAfter: 5, deadline: TimeSpan.FromSeconds(30))).Count(e => e.Name == "output") >= 3,
            TimeSpan.FromSeconds(60), "output to reach b");
        var onB = b.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(120));
        var onC = c.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(120));

        a.Kill();
        // One of b and c ends the task, and its follower reads the journal it writes; the other's reads the database.
        foreach (var (node, follower) in new[] { ("b", onB), ("c", onC) })
        {
            var events = await follower;
            Assert.True(events.Count(e => e.Name == "task.result") == 1, $"{node}: {string.Join(", ", events.TakeLast(4).Select(e => e.Name))}");
            Assert.Equal("task.end", events[^1].Name);
            Assert.NotNull(events[^1].Id);
            Assert.Equal("interrupted", events[^1].Data!["status"]!.GetValue<string>());
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task A_task_whose_end_reached_its_journal_but_not_its_row_is_recorded_with_that_end_read_from_its_last_commit_when_its_node_is_gone()
    {
        string db = await DatabaseAsync();
        var a = await NodeAsync(db, "a");
        var b = await NodeAsync(db, "b", Small);
        // The database takes every write but a task's final row (a fault of that one statement), so the end a produces
        // is only in its journal when a dies.
        await SqlAsync(db, """
            CREATE FUNCTION refuse_end() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
            CREATE TRIGGER refuse_end BEFORE UPDATE ON tasks FOR EACH ROW
                WHEN (OLD.status = 'running' AND NEW.status NOT IN ('running', 'queued')) EXECUTE FUNCTION refuse_end();
            """);
        string id = (await a.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "echo R" }, limits = new { memoryMaxMb = 300 } })).Id!;
        var journaled = await b.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(30));
        Assert.Equal("succeeded", journaled[^1].Data!["status"]!.GetValue<string>()); // the end, in the journal in the database
        Assert.Equal("running", (await b.Http.GetTaskAsync(id)).Body!["status"]!.GetValue<string>()); // and not in the row

        a.Kill();
        // The reaper reads the last commit alone, not the whole journal (a task's output may be a gigabyte): with an
        // earlier commit made unreadable, the end is still found. It is put back before the events are read.
        await SqlAsync(db, $"UPDATE journal SET data = '\\xff'::bytea || data WHERE task_id = '{id}' AND seq = 2; DROP TRIGGER refuse_end ON tasks;");
        var ended = await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(30));
        Assert.True("succeeded" == ended["status"]!.GetValue<string>(), ended.ToJsonString());
        Assert.Equal("R\n", ended["result"]!["text"]!.GetValue<string>());
        await SqlAsync(db, $"UPDATE journal SET data = substring(data from 2) WHERE task_id = '{id}' AND seq = 2;");
        var events = await b.Http.ReadEventsAsync(id);
        Assert.Single(events, e => e.Name == "task.end");
    }

    /// <summary>Runs <paramref name="sql"/> on <paramref name="database"/>; the first column of its first row, if any.</summary>
    private static async Task<object?> SqlAsync(string database, string sql)
    {
        await using var source = Npgsql.NpgsqlDataSource.Create(database);
        await using var command = source.CreateCommand(sql);
        return await command.ExecuteScalarAsync();
    }

    [Fact(Timeout = 180_000)]
    public async Task A_node_frozen_past_its_lease_fences_itself_when_it_thaws_and_its_late_writes_are_refused()
    {
        string db = await DatabaseAsync();
        string work = Scratch("corral-fleet-work-");
        var a = await NodeAsync(db, "a");
        var b = await NodeAsync(db, "b", Small);
        var created = await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "echo $$ > loop; setsid sleep 300 & echo $! > escapee; while :; do echo tick; sleep 0.1; done" },
            workdir = work,
            limits = new { memoryMaxMb = 300 },
        });
        string id = created.Id!;
        int loop = await Proc.ReadPidFileAsync(Path.Combine(work, "loop"), TimeSpan.FromSeconds(30));
        int escapee = await Proc.ReadPidFileAsync(Path.Combine(work, "escapee"), TimeSpan.FromSeconds(30));
        _processes.Add(Proc.Identify(loop));
        _processes.Add(Proc.Identify(escapee));
        await Proc.WaitForAsync(async () => (await b.Http.ReadEventsAsync(id, stopAfter: 5, deadline: TimeSpan.FromSeconds(30))).Count(e => e.Name == "output") >= 3,
            TimeSpan.FromSeconds(60), "output to reach b");
        var follower = b.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(120));
        using var feed = await FeedReader.OpenAsync(a.Http); // what a tells its own clients of the task's end

        Assert.True(a.Signal(SIGSTOP));
        try
        {
            var ended = await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(30));
            Assert.Equal("interrupted", ended["status"]!.GetValue<string>());
            Assert.Equal("task.end", (await follower)[^1].Name);
        }
        finally
        {
            a.Signal(SIGCONT);
        }

        var settled = (await b.Http.GetTaskAsync(id)).Body!.ToJsonString();
        int eventCount = (await b.Http.ReadEventsAsync(id)).Count;
        // Thawed, a finds its task taken and kills the tree at once; what it still writes is refused.
        await Proc.WaitForAsync(() => !Proc.IsAlive(loop) && !Proc.IsAlive(escapee), TimeSpan.FromSeconds(20), "the thawed node to kill its tree");
        await Proc.WaitForAsync(() => a.Log.Contains("another node recorded its end"), TimeSpan.FromSeconds(20), "the thawed node to give up its record");
        Assert.Equal(settled, (await b.Http.GetTaskAsync(id)).Body!.ToJsonString());
        // a tells its clients the end b recorded, not the one it could not write: its record, and its feed, which
        // carries the end twice (b's, relayed, and a's own).
        Assert.Equal(settled, (await a.Http.GetTaskAsync(id)).Body!.ToJsonString());
        int endsSeen = 0;
        var ends = (await feed.ReadUntilAsync((name, t) => name == "task.ended" && t["id"]!.GetValue<string>() == id && ++endsSeen == 2, TimeSpan.FromSeconds(20)))
            .Where(e => e.Name == "task.ended" && e.Data["id"]!.GetValue<string>() == id).ToList();
        var recordedEnd = JsonNode.Parse(settled)!["endedAt"]!.GetValue<DateTimeOffset>();
        Assert.All(ends, e => Assert.True(e.Data["endedAt"]!.GetValue<DateTimeOffset>() == recordedEnd, $"{e.Data.ToJsonString()}\nrecorded: {settled}"));
        var events = await b.Http.ReadEventsAsync(id);
        Assert.Equal(eventCount, events.Count);
        Assert.Equal("task.end", events[^1].Name);
        Assert.Equal("interrupted", events[^1].Data!["status"]!.GetValue<string>());
        // a goes on serving.
        Assert.Equal("succeeded", (await a.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30)).TaskStatus);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_node_that_fences_itself_in_a_database_outage_shorter_than_its_lease_records_its_task_interrupted_once_the_database_is_back()
    {
        string db = await DatabaseAsync();
        string work = Scratch("corral-fleet-work-");
        // Lease 9 s, renewed every 3 s: a fences itself after 6 s without a renewal, 3 s before its task's lease runs out.
        static void Lease(Dictionary<string, string> s) => s["Corral:Fleet:LeaseSeconds"] = "9";
        var a = await NodeAsync(db, "a", Lease);
        var b = await NodeAsync(db, "b", s =>
        {
            Lease(s);
            Small(s);
        });
        var created = await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "echo $$ > loop; while :; do echo tick; sleep 0.1; done" },
            workdir = work,
            limits = new { memoryMaxMb = 300 },
        });
        string id = created.Id!;
        int loop = await Proc.ReadPidFileAsync(Path.Combine(work, "loop"), TimeSpan.FromSeconds(30));
        _processes.Add(Proc.Identify(loop));
        await b.Http.WaitForAsync(id, t => t["status"]!.GetValue<string>() == "running");

        // The database is down from before a's first failed renewal until a has fenced itself, then back at once:
        // the outage is longer than two thirds of the lease and shorter than the lease.
        await postgres.Cluster.StopServerAsync();
        try
        {
            await Proc.WaitForAsync(() => a.Log.Contains("fences itself"), TimeSpan.FromSeconds(30), "a to fence itself");
        }
        finally
        {
            await postgres.Cluster.StartServerAsync();
        }

        await Proc.WaitForAsync(() => !Proc.IsAlive(loop), TimeSpan.FromSeconds(10), "the fenced node to kill its tree");
        // The row must not stay running while a lives (a renewing a lease on a task it gave up): a's own end lands, or
        // the lease lapses and b declares it.
        var ended = await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(30));
        Assert.True("interrupted" == ended["status"]!.GetValue<string>(), ended.ToJsonString());
        Assert.Equal(ended.ToJsonString(), (await a.Http.GetTaskAsync(id)).Body!.ToJsonString());
        Assert.Equal("task.end", (await b.Http.ReadEventsAsync(id, deadline: TimeSpan.FromSeconds(30)))[^1].Name);
        // a goes on serving.
        Assert.Equal("succeeded", (await a.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, limits = new { memoryMaxMb = 300 } }, wait: 30)).TaskStatus);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_database_outage_of_more_than_a_third_of_the_lease_that_begins_just_before_a_renewal_costs_a_running_task_nothing()
    {
        string db = await DatabaseAsync();
        string work = Scratch("corral-fleet-work-");
        // Lease 30 s: a node fences itself after 20 s without a renewal. The outage below spans two renewals a node
        // that renewed every third of the lease (10 s) would make, and ends well before a renewal that succeeded just
        // before it is 20 s old (about 4 s to spare for the database's start).
        var a = await NodeAsync(db, "a", s => s["Corral:Fleet:LeaseSeconds"] = "30");
        var created = await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "echo $$ > loop; until [ -e go ]; do sleep 0.05; done; echo R" },
            workdir = work,
        });
        string id = created.Id!;
        int loop = await Proc.ReadPidFileAsync(Path.Combine(work, "loop"), TimeSpan.FromSeconds(30));
        _processes.Add(Proc.Identify(loop));

        // The moment of a renewal, seen as the node's lease moving in the database.
        var renewed = await LeaseMovedAsync(db, "a", TimeSpan.FromSeconds(30));
        await UntilAsync(renewed + TimeSpan.FromSeconds(9.6));
        await postgres.Cluster.StopServerAsync();
        try
        {
            await UntilAsync(renewed + TimeSpan.FromSeconds(20.2));
        }
        finally
        {
            await postgres.Cluster.StartServerAsync();
        }

        Assert.True(Proc.IsAlive(loop), $"the task's tree was killed in the outage\n--- a:\n{a.Log[^Math.Min(a.Log.Length, 4000)..]}");
        await File.WriteAllTextAsync(Path.Combine(work, "go"), "");
        var ended = await a.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(60));
        Assert.True("succeeded" == ended["status"]!.GetValue<string>(), $"{ended.ToJsonString()}\n--- a:\n{a.Log[^Math.Min(a.Log.Length, 4000)..]}");
        Assert.Equal("R\n", await a.Http.GetStringAsync($"/v1/tasks/{id}/output"));
        Assert.DoesNotContain("fences itself", a.Log);
    }

    private static Task UntilAsync(DateTime moment) => Task.Delay(TimeSpan.FromTicks(Math.Max(0, (moment - DateTime.UtcNow).Ticks)));

    /// <summary>When <paramref name="node"/>'s lease in the database next moves (a renewal), to within 20 ms.</summary>
    private static async Task<DateTime> LeaseMovedAsync(string database, string node, TimeSpan deadline)
    {
        await using var source = Npgsql.NpgsqlDataSource.Create(database);
        await using var connection = await source.OpenConnectionAsync();
        await using var command = new Npgsql.NpgsqlCommand("SELECT lease_until FROM nodes WHERE id = $1", connection) { Parameters = { new() { Value = node } } };
        object? first = await command.ExecuteScalarAsync();
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < deadline)
        {
            await Task.Delay(20);
            if (!Equals(await command.ExecuteScalarAsync(), first))
                return DateTime.UtcNow;
        }

        throw new TimeoutException($"node {node}'s lease did not move within {deadline.TotalSeconds} s");
    }

    [Fact(Timeout = 180_000)]
    public async Task A_node_whose_tasks_wait_out_a_database_outage_goes_on_answering_health_checks_at_once()
    {
        string db = await DatabaseAsync();
        var a = await NodeAsync(db, "a", s =>
        {
            s["Corral:Fleet:LeaseSeconds"] = "15";
            s["Corral:MaxConcurrentTasks"] = "16";
        });
        var ids = new List<string>();
        for (int i = 0; i < 16; i++)
            ids.Add((await a.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "while :; do echo tick; sleep 0.01; done" } })).Id!);
        foreach (string id in ids)
            await a.Http.WaitForAsync(id, t => t["status"]!.GetValue<string>() == "running");

        await postgres.Cluster.StopServerAsync();
        var slowest = TimeSpan.Zero;
        try
        {
            var outage = Stopwatch.StartNew();
            while (outage.Elapsed < TimeSpan.FromSeconds(5))
            {
                var probe = Stopwatch.StartNew();
                using var answer = await a.Http.GetAsync("/healthz");
                Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
                slowest = probe.Elapsed > slowest ? probe.Elapsed : slowest;
                await Task.Delay(100);
            }
        }
        finally
        {
            await postgres.Cluster.StartServerAsync();
        }

        Assert.True(slowest < TimeSpan.FromSeconds(1), $"the slowest health check in the outage took {slowest.TotalMilliseconds:0} ms");
        foreach (string id in ids)
            await a.Http.CancelAsync(id);
        foreach (string id in ids)
            Assert.Equal("cancelled", (await a.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(60)))["status"]!.GetValue<string>());
    }

    [Fact(Timeout = 180_000)]
    public async Task Nodes_ride_out_a_database_restart_and_a_running_task_finishes_and_is_recorded_whole()
    {
        string db = await DatabaseAsync();
        var a = await NodeAsync(db, "a", s => s["Corral:Fleet:LeaseSeconds"] = "15");
        var b = await NodeAsync(db, "b", s =>
        {
            s["Corral:Fleet:LeaseSeconds"] = "15";
            Small(s);
        });
        var created = await a.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "for i in $(seq 1 40); do echo line-$i; sleep 0.1; done" },
            limits = new { memoryMaxMb = 300 },
        });
        string id = created.Id!;
        await a.Http.WaitForAsync(id, t => t["status"]!.GetValue<string>() == "running");

        await postgres.Cluster.RestartAsync(TimeSpan.FromSeconds(1));

        var ended = await b.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(60));
        Assert.True("succeeded" == ended["status"]!.GetValue<string>(), $"{ended.ToJsonString()}\n--- a:\n{a.Log[^Math.Min(a.Log.Length, 4000)..]}");
        Assert.Equal(string.Concat(Enumerable.Range(1, 40).Select(i => $"line-{i}\n")), await b.Http.GetStringAsync($"/v1/tasks/{id}/output"));
        var events = await b.Http.ReadEventsAsync(id);
        Assert.Equal(40, events.Count(e => e.Name == "output"));
        Assert.Equal("task.end", events[^1].Name);
        // Both nodes listen again: a task sent to b after the restart is claimed and waited for.
        Assert.Equal("succeeded", (await b.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30)).TaskStatus);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            node.Signal(SIGCONT);
            node.Kill();
        }

        _processes.ForEach(Proc.KillIfAlive);
        foreach (string dir in _directories)
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        await Task.CompletedTask;
    }

    [Fact(Timeout = 180_000)]
    public async Task Retention_on_any_node_deletes_tasks_another_node_ran_with_their_journals_and_spares_running_ones()
    {
        string db = await DatabaseAsync();
        // a sweeps (a 3 s retention) and cannot run the task; b runs it and keeps everything itself.
        var a = await NodeAsync(db, "a", s =>
        {
            Small(s);
            s["Corral:RetentionDays"] = (3.0 / 86400).ToString(System.Globalization.CultureInfo.InvariantCulture);
            s["Corral:RetentionSweepMinutes"] = "0.01";
        });
        var b = await NodeAsync(db, "b", s => s["Corral:RetentionDays"] = "0");
        var done = await b.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "old" }, limits = new { memoryMaxMb = 300 } }, wait: 30);
        Assert.Equal("succeeded", done.TaskStatus);
        Assert.Equal("b", done.Body!["node"]!.GetValue<string>());
        var running = await a.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" }, limits = new { memoryMaxMb = 300 } });
        await b.Http.WaitForAsync(running.Id!, t => t["status"]!.GetValue<string>() == "running");

        await Proc.WaitForAsync(async () => (await b.Http.GetTaskAsync(done.Id!)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(60), "a's sweep to delete b's task");
        Assert.Equal(HttpStatusCode.NotFound, (await a.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{done.Id}/events")).Status);
        Assert.Equal(HttpStatusCode.NotFound, (await b.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{done.Id}/output")).Status);
        Assert.Equal("running", (await a.Http.GetTaskAsync(running.Id!)).TaskStatus);
        await a.Http.CancelAsync(running.Id!);
        Assert.Equal("cancelled", (await b.Http.WaitForEndAsync(running.Id!))["status"]!.GetValue<string>());
    }

    /// <summary>A node without the memory for a task limited to 300 MiB: it takes only the others.</summary>
    private static void Small(Dictionary<string, string> settings)
    {
        settings["Corral:Limits:NodeMemoryMb"] = "200";
        settings["Corral:Limits:MemoryReserveMb"] = "0";
    }

    private async Task<string> DatabaseAsync()
    {
        if (PostgresCluster.Unavailable is { } why)
            Assert.Skip(why);
        return await postgres.Cluster.CreateDatabaseAsync();
    }

    private async Task<ServerProcess> NodeAsync(string database, string name, Action<Dictionary<string, string>>? configure = null, string? data = null)
    {
        var node = await ServerProcess.StartAsync(data ?? Scratch($"corral-fleet-{name}-"), s =>
        {
            s["Corral:Fleet:LeaseSeconds"] = "3";
            s["Corral:Limits:MaxMemoryPressure"] = "100";
            configure?.Invoke(s);
        }, arguments: ["--postgres", database, "--node-id", name]);
        _nodes.Add(node);
        return node;
    }

    private string Scratch(string prefix)
    {
        string dir = Directory.CreateTempSubdirectory(prefix).FullName;
        _directories.Add(dir);
        return dir;
    }
}
