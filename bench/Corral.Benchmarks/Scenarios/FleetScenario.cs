using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Benchmarks.Harness;
using Corral.Server.Hosting;
using Corral.Testing.Support.Postgres;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 9. A fleet of server nodes on one throwaway PostgreSQL (the tests' <see cref="PostgresCluster"/>), each node a child
/// process of this program in host mode: throughput of <c>POST /v1/tasks?wait=60</c> on SQLite, one PostgreSQL node and
/// three; how long a queued task waits for a node to claim it (<c>createdAt</c> → <c>startedAt</c>); and how late an
/// output line reaches an SSE follower on another node than the one that runs the task, against one on the same node.
/// </summary>
internal sealed class FleetScenario : IScenario
{
    public const string HostFlag = "--fleet-host";

    public string Key => "fleet";
    public string Title => "9. Fleet";
    public string? Unavailable => PostgresCluster.Unavailable;

    private const int Clients = 16;
    private const string Sqlite = "SQLite, 1 server";
    private const string OneNode = "PostgreSQL, 1 node";
    private const string ThreeNodes = "PostgreSQL, 3 nodes";

    private static readonly string[] Echo = ["/bin/echo", "hi"];

    private static readonly string[] Settings =
    [
        .. ServerScenario.Settings,
        // A machine busy with someone else's tests must not hold task starts back: this measures the claim, not PSI.
        "--Corral:Limits:MaxMemoryPressure=100",
    ];

    /// <summary>
    /// Host mode: <c>--fleet-host DATA_DIR [--postgres CONNSTRING --node-id NAME]</c>; a node of a fleet (or, without
    /// <c>--postgres</c>, a SQLite server), configured as scenario 7's; prints "Corral listening on URL", stops on SIGTERM.
    /// </summary>
    public static Task<int> HostAsync(string[] args)
    {
        string? postgres = null, node = null;
        for (int i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--postgres": postgres = args[++i]; break;
                case "--node-id": node = args[++i]; break;
                default: throw new ArgumentException($"unknown host argument {args[i]}");
            }
        }

        return CorralServer.RunAsync(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = args[0], Postgres = postgres, NodeId = node }, Settings);
    }

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        string loadBefore = MachineInfo.LoadAverageNow();
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Rate,
            Description =
                "Server nodes are `CorralServer.RunAsync` in child processes (this program in host mode, configured as scenario 7's: MaxConcurrentTasks=64 " +
                "each, other agents disabled; MaxMemoryPressure=100 so that a busy machine's PSI does not hold starts back; the default isolation, as root a uid " +
                "per task, leased host-wide, so the nodes never share one), all on this machine. The fleet's " +
                "database is a throwaway PostgreSQL cluster (initdb as the postgres user, fsync off, as the tests start it), a database per fleet. " +
                $"**Throughput**: `/bin/echo hi` through `POST /v1/tasks?wait=60`, {Clients} concurrent clients spread round-robin over the nodes; tasks/s over whole " +
                "batches, latencies per task as the client sees them. **Claim**: tasks POSTed without `wait`, one at a time, to an idle server or fleet (sent " +
                "round-robin to the nodes); the time is the final record's `startedAt − createdAt` (the server's clock: acceptance to the process started, " +
                "so it includes the spawn). **Events**: a task prints its own clock (`date +%s%N`) every 20 ms; two SSE followers of " +
                "`GET /v1/tasks/{id}/events`, one on the node that runs it and one on another node, time each `output` event as receive time − printed time. " +
                "Cases are rotated round by round so none always runs first.",
        };
        context.Report.Scenarios.Add(report);

        int rounds = o.N(5, 1);
        int batch = o.N(200, 48);
        int claimsPerRound = Math.Max(1, o.N(200, 30) / rounds);
        int lines = o.N(200, 50);
        var cleanup = new List<string>();
        var nodes = new List<Node>();
        PostgresCluster? cluster = null;
        try
        {
            var started = Stopwatch.StartNew();
            cluster = await PostgresCluster.StartAsync();
            string dbOne = await cluster.CreateDatabaseAsync();
            string dbThree = await cluster.CreateDatabaseAsync();
            RunContext.Log($"fleet: PostgreSQL on port {cluster.Port} in {started.Elapsed.TotalSeconds:0.0} s");

            var pending = new List<Task<Node>>
            {
                Node.StartAsync("sqlite", null, cleanup),
                Node.StartAsync("solo", dbOne, cleanup),
                Node.StartAsync("a", dbThree, cleanup),
                Node.StartAsync("b", dbThree, cleanup),
                Node.StartAsync("c", dbThree, cleanup),
            };
            try
            {
                await Task.WhenAll(pending);
            }
            finally
            {
                nodes.AddRange(pending.Where(t => t.IsCompletedSuccessfully).Select(t => t.Result));
            }

            RunContext.Log($"fleet: {nodes.Count} nodes up after {started.Elapsed.TotalSeconds:0.0} s: {string.Join(", ", nodes.Select(n => $"{n.Name} {n.BaseUrl}"))}");
            var sqlite = new[] { nodes[0] };
            var one = new[] { nodes[1] };
            var three = nodes.Skip(2).ToArray();

            var throughput = new List<(string Name, Role Role, Node[] Nodes)> { (Sqlite, Role.Baseline, sqlite), (OneNode, Role.Corral, one), (ThreeNodes, Role.Corral, three) };
            throughput.RemoveAll(c => !o.Includes(c.Name));
            var claims = new List<(string Name, Role Role, Node[] Nodes)> { (Sqlite, Role.Baseline, sqlite), (ThreeNodes, Role.Corral, three) };
            claims.RemoveAll(c => !o.Includes(c.Name));
            string throughputCase = $"throughput, {Clients} clients";
            const string claimCase = "claim: createdAt → startedAt, idle";
            const string eventsCase = "output event: printed → received over SSE";
            var seconds = new Dictionary<string, double>();
            var ranOn = new Dictionary<string, int>();

            foreach (var c in throughput)
            {
                // Every node measured warm: until the JIT of each is done with the calls.
                int batches = await Warmup.UntilCompiledAsync(c.Nodes.Select(n => n.Process.Id).ToList(), () => BatchAsync(c.Nodes, o.N(150, 48), 4, null),
                    TimeSpan.FromSeconds(o.Quick ? 10 : 90)).ConfigureAwait(false);
                RunContext.Log($"fleet: {c.Name} warm after {batches} batches");
            }
            foreach (var c in claims)
                await ClaimsAsync(c.Nodes, 3, null, null);

            for (int round = 0; round < rounds; round++)
            {
                foreach (var (name, role, targets) in Measure.Rotate(throughput, round))
                {
                    var s = report.Get(throughputCase, name, role);
                    s.RateUnit = "tasks/s";
                    seconds[name] = seconds.GetValueOrDefault(name) + await BatchAsync(targets, batch, Clients, s);
                    s.MeasuredRate = s.Calls / seconds[name];
                }

                await Task.Delay(500); // the last batch's final writes land: the claims start on idle nodes
                foreach (var (name, role, targets) in Measure.Rotate(claims, round))
                    await ClaimsAsync(targets, claimsPerRound, report.Get(claimCase, name, role), targets.Length > 1 ? ranOn : null);

                if (o.Includes("event"))
                {
                    await EventsAsync(three, round, lines, report.Get(eventsCase, "follower on another node", Role.Corral),
                        report.Get(eventsCase, "follower on the running node", Role.Baseline));
                }

                RunContext.Log($"fleet: round {round + 1}/{rounds}");
            }

            string loadAfter = MachineInfo.LoadAverageNow();
            Findings(report, throughputCase, claimCase, eventsCase, ranOn, loadBefore, loadAfter);
            if (!o.NoCharts && report.Series.Any(s => s.Case == throughputCase))
            {
                report.Chart = "fleet.png";
                Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), $"Command tasks per second, {Clients} clients: SQLite vs a PostgreSQL fleet",
                    "tasks/s", [throughputCase], throughput.Select(c => c.Name).ToList(),
                    (cs, cn) => report.Series.FirstOrDefault(s => s.Case == cs && s.Contender == cn)?.Rate, logScale: false);
            }
        }
        finally
        {
            int left = await Node.StopAllAsync(nodes);
            if (cluster is not null)
                left += await StopClusterAsync(cluster);
            foreach (string dir in cleanup)
                LaterDeletes.Add(dir);

            if (left > 0)
                report.Findings.Add($"{left} process(es) of the nodes or the cluster outlived their stop and were killed.");
            RunContext.Log($"fleet: nodes and cluster stopped ({left} process(es) had to be killed)");
        }
    }

    private static void Findings(ScenarioReport report, string throughputCase, string claimCase, string eventsCase, Dictionary<string, int> ranOn, string before, string after)
    {
        Series? Find(string @case, string contender) => report.Series.FirstOrDefault(s => s.Case == @case && s.Contender == contender && s.Ms.Count > 0);

        var rates = new[] { Sqlite, OneNode, ThreeNodes }.Select(n => Find(throughputCase, n)).OfType<Series>().ToList();
        if (rates.Count > 0)
        {
            string Line(Series s) => $"{s.Contender} {Stats.Num(s.Rate!.Value)} tasks/s (p50 {Stats.Ms(s.Median)}, p99 {Stats.Ms(s.P99)})";
            string ratio = Find(throughputCase, Sqlite) is { } baseline && Find(throughputCase, ThreeNodes) is { } fleet
                ? $"; 3 nodes ÷ SQLite = {fleet.Rate!.Value / baseline.Rate!.Value:0.00}×" : "";
            string ratioOne = Find(throughputCase, Sqlite) is { } b1 && Find(throughputCase, OneNode) is { } one
                ? $", 1 node ÷ SQLite = {one.Rate!.Value / b1.Rate!.Value:0.00}×" : "";
            report.Findings.Add($"Throughput ({throughputCase}): {string.Join("; ", rates.Select(Line))}{ratio}{ratioOne}. On 2 cores the nodes share the same " +
                                "CPUs as each other, PostgreSQL and the clients: more nodes here add scheduling, not capacity.");
        }

        if (Find(claimCase, ThreeNodes) is { } claim)
        {
            string spread = ranOn.Count > 0 ? $" Ran on: {string.Join(", ", ranOn.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {kv.Value}"))}." : "";
            string baseline = Find(claimCase, Sqlite) is { } s ? $"; SQLite server p50 {Stats.Ms(s.Median)}, p99 {Stats.Ms(s.P99)}" : "";
            report.Findings.Add($"Claim (3 idle nodes, {claim.Ms.Count} tasks one at a time): p50 {Stats.Ms(claim.Median)}, p99 {Stats.Ms(claim.P99)} " +
                                $"(target ≤ 50 ms p99: {(claim.P99 <= 50 ? "met" : "**not met**")}){baseline}.{spread}");
        }

        if (Find(eventsCase, "follower on another node") is { } cross && Find(eventsCase, "follower on the running node") is { } same)
        {
            report.Findings.Add($"Output events: a follower on another node gets a line p50 {Stats.Ms(cross.Median)}, p99 {Stats.Ms(cross.P99)} after it was printed; " +
                                $"on the node that runs the task p50 {Stats.Ms(same.Median)}, p99 {Stats.Ms(same.P99)} (the journal row and its NOTIFY cost " +
                                $"{Stats.Ms(cross.Median - same.Median)} at p50).");
        }

        report.Findings.Add($"Load average before the scenario: {before}; after: {after} (2 cores; other work on the machine shares them).");
    }

    /// <summary><paramref name="count"/> tasks through <c>?wait=60</c>, <paramref name="clients"/> at a time, each request to the next node; the batch's seconds.</summary>
    private static async Task<double> BatchAsync(Node[] nodes, int count, int clients, Series? series)
    {
        string tag = Leftovers.NewTag();
        int next = 0;
        double elapsed = await ServerScenario.BatchAsync(async _ =>
        {
            var node = nodes[(Interlocked.Increment(ref next) - 1) % nodes.Length];
            using var response = await node.Http.PostAsJsonAsync("/v1/tasks?wait=60", Body(Echo, tag)).ConfigureAwait(false);
            var record = await response.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false);
            string status = record?["status"]?.GetValue<string>() ?? "";
            return response.StatusCode == HttpStatusCode.OK && status == "succeeded" ? null : $"HTTP {(int)response.StatusCode} {Failure(record)}";
        }, count, clients, tag, series).ConfigureAwait(false);
        int left = Leftovers.KillAll(tag);
        if (series is not null)
            series.LeftBehind += left;
        return elapsed;
    }

    /// <summary>Tasks POSTed without wait, one at a time (each to the next node), each waited for to the end; records <c>startedAt − createdAt</c>.</summary>
    private static async Task ClaimsAsync(Node[] nodes, int count, Series? series, Dictionary<string, int>? ranOn)
    {
        string tag = Leftovers.NewTag();
        for (int i = 0; i < count; i++)
        {
            var node = nodes[i % nodes.Length];
            string? error = null;
            try
            {
                using var response = await node.Http.PostAsJsonAsync("/v1/tasks", Body(Echo, tag)).ConfigureAwait(false);
                var created = await response.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false);
                if (response.StatusCode != HttpStatusCode.Accepted || created?["id"]?.GetValue<string>() is not { } id)
                {
                    error = $"HTTP {(int)response.StatusCode}";
                }
                else
                {
                    var record = await WaitForAsync(node, id, r => r["status"]?.GetValue<string>() is not ("queued" or "running"), TimeSpan.FromSeconds(60));
                    if (record?["status"]?.GetValue<string>() != "succeeded" || record["startedAt"] is null)
                    {
                        error = record is null ? "timed out" : Failure(record);
                    }
                    else
                    {
                        var ms = (Time(record, "startedAt") - Time(record, "createdAt")).TotalMilliseconds;
                        series?.Record(ms);
                        if (ranOn is not null && record["node"]?.GetValue<string>() is { } ran)
                            ranOn[ran] = ranOn.GetValueOrDefault(ran) + 1;
                    }
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or JsonException)
            {
                error = e.GetType().Name + ": " + e.Message;
            }

            if (error is not null && series is not null)
            {
                series.Failures++;
                if (series.Notes.Count < 3)
                    series.Notes.Add(error);
            }
        }

        int left = Leftovers.KillAll(tag);
        if (series is not null)
            series.LeftBehind += left;
    }

    /// <summary>
    /// One task on the fleet that prints its clock every 20 ms; once it runs, one follower on its node and one on
    /// another read its events to the end. Lines printed before a follower was connected are not counted.
    /// </summary>
    private static async Task EventsAsync(Node[] fleet, int round, int lines, Series cross, Series same)
    {
        string tag = Leftovers.NewTag();
        // A second of sleep first: the followers connect before the first line, so none of it is replay.
        string script = $"sleep 1; for i in $(seq {lines}); do date +%s%N; sleep 0.02; done";
        var entry = fleet[round % fleet.Length];
        try
        {
            using var response = await entry.Http.PostAsJsonAsync("/v1/tasks", Body(["bash", "-c", script], tag)).ConfigureAwait(false);
            var created = await response.Content.ReadFromJsonAsync<JsonObject>().ConfigureAwait(false);
            if (response.StatusCode != HttpStatusCode.Accepted || created?["id"]?.GetValue<string>() is not { } id)
            {
                cross.Failures++;
                cross.Notes.Add($"create: HTTP {(int)response.StatusCode}");
                return;
            }

            var running = await WaitForAsync(entry, id, r => r["node"] is not null || r["status"]?.GetValue<string>() is not ("queued" or "running"), TimeSpan.FromSeconds(30));
            if (running?["node"]?.GetValue<string>() is not { } ranOn || fleet.FirstOrDefault(n => n.Name == ranOn) is not { } runner)
            {
                cross.Failures++;
                cross.Notes.Add("the task did not start on a known node");
                return;
            }

            var others = fleet.Where(n => n != runner).ToArray();
            var other = others[round % others.Length];
            var followers = new[] { FollowAsync(other, id, cross), FollowAsync(runner, id, same) };
            await Task.WhenAll(followers);
            var ended = await WaitForAsync(other, id, r => r["status"]?.GetValue<string>() is not ("queued" or "running"), TimeSpan.FromSeconds(30));
            if (ended?["status"]?.GetValue<string>() != "succeeded")
            {
                cross.Failures++;
                cross.Notes.Add("the printing task: " + (ended is null ? "did not end" : Failure(ended)));
            }
        }
        finally
        {
            int left = Leftovers.KillAll(tag);
            cross.LeftBehind += left;
        }
    }

    /// <summary>Reads a task's events over SSE to <c>task.end</c>; records (receive − printed) in ms of each <c>output</c> line printed after it connected.</summary>
    private static async Task FollowAsync(Node node, string id, Series series)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/tasks/{id}/events");
            using var response = await node.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token).ConfigureAwait(false);
            response.EnsureSuccessStatusCode();
            long connected = NowNs();
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token).ConfigureAwait(false), Encoding.UTF8);
            string? name = null;
            int early = 0;
            while (await reader.ReadLineAsync(cts.Token).ConfigureAwait(false) is { } line)
            {
                long received = NowNs();
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    name = line[7..];
                    if (name == "task.end")
                        break;
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal) && name == "output")
                {
                    using var doc = JsonDocument.Parse(line.AsMemory(6));
                    if (!long.TryParse(doc.RootElement.GetProperty("text").GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out long printed))
                        continue;
                    if (printed < connected)
                        early++;
                    else
                        series.Record((received - printed) / 1e6);
                }
                else if (line.Length == 0)
                {
                    name = null;
                }
            }

            if (early > 0)
                series.Notes.Add($"{early} line(s) printed before the follower connected, not counted");
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or JsonException or IOException)
        {
            series.Failures++;
            series.Notes.Add($"follower on {node.Name}: {e.GetType().Name}: {e.Message}");
        }
    }

    /// <summary>Polls the task record every 10 ms until <paramref name="done"/>; null on timeout.</summary>
    private static async Task<JsonObject?> WaitForAsync(Node node, string id, Func<JsonObject, bool> done, TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            var record = await node.Http.GetFromJsonAsync<JsonObject>($"/v1/tasks/{id}").ConfigureAwait(false);
            if (record is not null && done(record))
                return record;
            await Task.Delay(10).ConfigureAwait(false);
        }

        return null;
    }

    /// <summary>A refused or failed task in a few words: its status and its error's code and message.</summary>
    private static string Failure(JsonObject? record) =>
        record is null ? "" : $"{record["status"]} {record["error"]?["code"]}: {record["error"]?["message"] ?? record["title"]}";

    private static JsonObject Body(string[] command, string tag) => new()
    {
        ["agent"] = "command",
        ["command"] = new JsonArray(command.Select(a => (JsonNode?)a).ToArray()),
        ["env"] = new JsonObject { [Leftovers.TagVariable] = tag },
    };

    private static DateTimeOffset Time(JsonObject record, string field) =>
        DateTimeOffset.Parse(record[field]!.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);

    /// <summary>The realtime clock in ns since the epoch: the same clock as <c>date +%s%N</c>.</summary>
    private static long NowNs() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks * 100;

    /// <summary>Stops the cluster, then kills whatever of it is still there (its postmaster is found by its port).</summary>
    private static async Task<int> StopClusterAsync(PostgresCluster cluster)
    {
        var members = ClusterProcesses(cluster.Port);
        try
        {
            await cluster.DisposeAsync();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            RunContext.Log($"fleet: stopping the cluster: {e.Message}");
        }

        // pg_ctl -w waits for the postmaster; its backends notice its death a moment later.
        var deadline = Stopwatch.GetTimestamp() + 5 * Stopwatch.Frequency;
        List<int> alive;
        while ((alive = members.Where(IsLivePostgres).ToList()).Count > 0 && Stopwatch.GetTimestamp() < deadline)
            await Task.Delay(50);
        foreach (int pid in alive)
        {
            RunContext.Log($"fleet: killing PostgreSQL process {pid} still there 5 s after the cluster stopped");
            Native.kill(pid, Native.SIGKILL);
        }

        return alive.Count;
    }

    private static bool IsLivePostgres(int pid)
    {
        try
        {
            return Leftovers.Comm(pid) is "postgres" && ProcStat.Read(pid).Fields[0] != "Z";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The postmaster started with <c>-p PORT</c> and its children.</summary>
    private static List<int> ClusterProcesses(int port)
    {
        var parents = new Dictionary<int, int>();
        int postmaster = 0;
        foreach (int pid in Leftovers.AllPids())
        {
            try
            {
                if (Leftovers.Comm(pid) is not "postgres")
                    continue;
                parents[pid] = int.Parse(ProcStat.Read(pid).Fields[1], CultureInfo.InvariantCulture);
                string[] argv = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
                if (Array.IndexOf(argv, "-p") is int at and >= 0 && at + 1 < argv.Length && argv[at + 1] == port.ToString(CultureInfo.InvariantCulture))
                    postmaster = pid;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }

        return postmaster == 0 ? [] : [postmaster, .. parents.Where(kv => kv.Value == postmaster).Select(kv => kv.Key)];
    }

    /// <summary>One server process of the scenario, tagged so that the harness can find all it started.</summary>
    private sealed class Node(string name, Process process, string tag, string baseUrl)
    {
        public string Name { get; } = name;
        public string BaseUrl { get; } = baseUrl;
        public Process Process { get; } = process;
        public string Tag { get; } = tag;

        public HttpClient Http { get; } = new(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
        {
            BaseAddress = new Uri(baseUrl),
            Timeout = TimeSpan.FromSeconds(120),
        };

        public static async Task<Node> StartAsync(string name, string? postgres, List<string> cleanup)
        {
            string data = ServerData.Create($"fleet-{name}-");
            lock (cleanup) cleanup.Add(data);
            string tag = Leftovers.NewTag();
            var (p, baseUrl) = await HostProcess.StartAsync([HostFlag, data, .. postgres is null ? [] : (string[])["--postgres", postgres, "--node-id", name]],
                tag, $"node {name}");
            return new Node(name, p, tag, baseUrl);
        }

        /// <summary>SIGTERM to every node, then a kill for any that has not stopped in 30 s; how many processes had to be killed.</summary>
        public static async Task<int> StopAllAsync(IReadOnlyList<Node> nodes)
        {
            foreach (var n in nodes)
                Native.kill(n.Process.Id, Native.SIGTERM);
            int killed = 0;
            foreach (var n in nodes)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
                try
                {
                    await n.Process.WaitForExitAsync(cts.Token);
                }
                catch (OperationCanceledException)
                {
                    RunContext.Log($"fleet: node {n.Name} did not stop within 30 s of SIGTERM: killed");
                    n.Process.Kill(entireProcessTree: true);
                    killed++;
                }
            }

            foreach (var n in nodes)
            {
                int left = Leftovers.KillAll(n.Tag);
                if (left > 0)
                    RunContext.Log($"fleet: killed {left} process(es) of node {n.Name} still there after it stopped");
                killed += left;
                n.Http.Dispose();
                n.Process.Dispose();
            }

            return killed;
        }
    }
}
