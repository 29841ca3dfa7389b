using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Benchmarks.Harness;
using Corral.Processes;
using Corral.Server.Hosting;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 7. Corral.Server over loopback HTTP: the command agent runs <c>/bin/echo hi</c> through
/// <c>POST /v1/tasks?wait=60</c> (one request = create, run, wait for the final record) with 1, 16 and 64
/// concurrent clients, against the same command run directly with <see cref="ProcessTree.RunAsync"/> at the same
/// concurrency. The server runs in a child process (this program in host mode), as <c>corral serve</c> would.
/// </summary>
internal sealed class ServerScenario : IScenario
{
    public const string HostFlag = "--server-host";

    public string Key => "server";
    public string Title => "7. Server";
    public string? Unavailable => null;

    private static readonly string[] Command = ["/bin/echo", "hi"];

    /// <summary>Host mode: <c>--server-host DATA_DIR</c>; prints the server's "Corral listening on URL" line, stops on SIGTERM.</summary>
    public static Task<int> HostAsync(string[] args) => CorralServer.RunAsync(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = args[0] }, Settings);

    /// <summary>How this scenario's server is configured (the fleet scenario's nodes start from it).</summary>
    internal static readonly string[] Settings =
    [
        "--Corral:MaxConcurrentTasks=64", "--Corral:MaxQueuedTasks=1024", "--Corral:ClaudeCode:Enabled=false",
        "--Corral:Codex:Enabled=false", "--Corral:Gemini:Enabled=false", "--Logging:LogLevel:Default=Warning",
    ];

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Rate,
            Description =
                "The command agent runs `/bin/echo hi` through `POST /v1/tasks?wait=60` on loopback (one request creates the task, runs it and returns " +
                "the final record: SQLite row, event and transcript files, the process tree) with 1, 16 and 64 concurrent clients, against the same " +
                "command run directly with `ProcessTree.RunAsync` at the same concurrency. The server is `CorralServer.RunAsync` in a child process " +
                "(MaxConcurrentTasks=64, MaxQueuedTasks=1024, other agents disabled). Each side is warmed until its process's JIT is quiet (a server " +
                "keeps recompiling for many seconds). Rates are tasks/s over whole batches; latencies are per task as the client sees them; CPU per task " +
                "is the process's CPU time (with its reaped children: the tasks' own processes) over the batches, the server's for the server and " +
                "this program's for direct calls.",
        };
        context.Report.Scenarios.Add(report);

        string data = ServerData.Create("server-");
        string serverTag = Leftovers.NewTag();
        var (server, baseUrl) = await StartServerAsync(data, serverTag);
        using var _ = server;
        RunContext.Log($"server: {baseUrl} (pid {server.Id}), data in {data}");
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256, PooledConnectionLifetime = Timeout.InfiniteTimeSpan })
        {
            BaseAddress = new Uri(baseUrl),
            Timeout = TimeSpan.FromSeconds(120),
        };

        var contenders = new List<(string Name, Role Role, Func<string, Task<string?>> Call)>
        {
            ("Corral.Server: POST /v1/tasks?wait", Role.Corral, tag => ViaServerAsync(http, tag)),
            ("direct: ProcessTree.RunAsync", Role.Baseline, DirectAsync),
        };
        contenders.RemoveAll(c => !o.Includes(c.Name));
        int rounds = o.N(5, 1);
        int batch = o.N(200, 40);
        var cases = new (string Name, int Clients)[] { ("1 client", 1), ("16 clients", 16), ("64 clients", 64) };
        var seconds = new Dictionary<(string, string), double>();
        var cpu = new Dictionary<(string, string), double>();
        var clientCpu = new Dictionary<string, double>();
        // The process whose CPU a contender's calls use: the server's, or this program's for direct calls.
        int RunsCalls(Role role) => role == Role.Corral ? server.Id : Environment.ProcessId;

        try
        {
            foreach (var c in contenders)
            {
                // Both sides measured warm: until the JIT of the process that runs the calls is done with them.
                int batches = await Warmup.UntilCompiledAsync(RunsCalls(c.Role), () => BatchAsync(c.Call, o.N(300, 60), 4, Leftovers.NewTag(), null), TimeSpan.FromSeconds(o.Quick ? 10 : 90));
                RunContext.Log($"server: {c.Name} warm after {batches} batches");
            }

            for (int round = 0; round < rounds; round++)
            {
                foreach (var (name, clients) in cases)
                {
                    foreach (var (cname, role, call) in Measure.Rotate(contenders, round))
                    {
                        var s = report.Get(name, cname, role);
                        s.RateUnit = "tasks/s";
                        string tag = Leftovers.NewTag();
                        int pid = RunsCalls(role);
                        double cpuBefore = CpuMilliseconds(pid), clientBefore = CpuMilliseconds(Environment.ProcessId);
                        double elapsed = await BatchAsync(call, Math.Max(batch, clients * 4), clients, tag, s);
                        cpu[(name, cname)] = cpu.GetValueOrDefault((name, cname)) + CpuMilliseconds(pid) - cpuBefore;
                        if (role == Role.Corral)
                            clientCpu[name] = clientCpu.GetValueOrDefault(name) + CpuMilliseconds(Environment.ProcessId) - clientBefore;
                        s.LeftBehind += Leftovers.KillAll(tag);
                        seconds[(name, cname)] = seconds.GetValueOrDefault((name, cname)) + elapsed;
                        s.MeasuredRate = s.Calls / seconds[(name, cname)];
                    }
                }

                RunContext.Log($"server: round {round + 1}/{rounds}");
            }
        }
        finally
        {
            Native.kill(server.Id, Native.SIGTERM);
            if (!server.WaitForExit(TimeSpan.FromSeconds(30)))
                server.Kill(entireProcessTree: true);
            Leftovers.KillAll(serverTag);
            LaterDeletes.Add(data);
        }

        foreach (var (name, _) in cases)
        {
            var viaServer = report.Series.FirstOrDefault(s => s.Case == name && s.Role == Role.Corral);
            var direct = report.Series.FirstOrDefault(s => s.Case == name && s.Role == Role.Baseline);
            if (viaServer is null || direct is null)
                continue;
            report.Findings.Add($"{name}: {Stats.Num(viaServer.Rate!.Value)} tasks/s through the server vs {Stats.Num(direct.Rate!.Value)} direct; " +
                                $"added latency p50 {Stats.Ms(viaServer.Median - direct.Median)}, p99 {Stats.Ms(viaServer.P99 - direct.P99)}; " +
                                $"CPU per task {Stats.Ms(cpu[(name, viaServer.Contender)] / viaServer.Calls)} in the server (and {Stats.Ms(clientCpu[name] / viaServer.Calls)} in its HTTP client, on the same cores) vs {Stats.Ms(cpu[(name, direct.Contender)] / direct.Calls)} direct.");
        }

        if (!o.NoCharts)
        {
            report.Chart = "server.png";
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), "Command tasks per second: through Corral.Server vs direct",
                "tasks/s", report.Cases.ToList(), contenders.Select(c => c.Name).ToList(),
                (cs, cn) => report.Series.FirstOrDefault(s => s.Case == cs && s.Contender == cn)?.Rate, logScale: false);
        }
    }

    /// <summary>A server in host mode on <paramref name="data"/>, configured as this scenario's.</summary>
    internal static async Task<(Process Process, string BaseUrl)> StartServerAsync(string data, string tag)
    {
        Directory.CreateDirectory(data);
        return await HostProcess.StartAsync([HostFlag, data], tag, "the server").ConfigureAwait(false);
    }

    private static async Task<string?> ViaServerAsync(HttpClient http, string tag)
    {
        var body = new JsonObject
        {
            ["agent"] = "command",
            ["command"] = new JsonArray(Command.Select(a => (JsonNode?)a).ToArray()),
            ["env"] = new JsonObject { [Leftovers.TagVariable] = tag },
        };
        using var response = await http.PostAsJsonAsync("/v1/tasks?wait=60", body).ConfigureAwait(false);
        if (response.StatusCode != HttpStatusCode.OK)
            return $"HTTP {(int)response.StatusCode}";
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStreamAsync().ConfigureAwait(false));
        string status = doc.RootElement.GetProperty("status").GetString() ?? "";
        return status == "succeeded" ? null : "status " + status;
    }

    private static async Task<string?> DirectAsync(string tag)
    {
        var result = await ProcessTree.RunAsync(new ProcessSpec(Command[0], Command[1..])
        {
            Environment = new Dictionary<string, string?> { [Leftovers.TagVariable] = tag },
        }).ConfigureAwait(false);
        return result.Outcome.ExitCode == 0 && result.StandardOutput == "hi\n" ? null : "unexpected result";
    }

    /// <summary>CPU time used so far by <paramref name="pid"/> and its reaped children (the tasks' processes), in milliseconds.</summary>
    private static double CpuMilliseconds(int pid)
    {
        // utime, stime, cutime, cstime: fields 14 to 17, in clock ticks of 10 ms.
        return ProcStat.Read(pid).Fields[11..15].Sum(f => long.Parse(f, System.Globalization.CultureInfo.InvariantCulture)) * 10.0;
    }

    /// <summary>Runs <paramref name="count"/> calls from <paramref name="clients"/> concurrent clients, each latency and failure recorded in <paramref name="series"/>; the wall time in seconds.</summary>
    internal static async Task<double> BatchAsync(Func<string, Task<string?>> call, int count, int clients, string tag, Series? series)
    {
        int next = 0;
        var latencies = new double[count];
        var errors = new List<string>();

        async Task Client()
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next) - 1;
                if (i >= count)
                    return;
                long start = Stopwatch.GetTimestamp();
                string? error;
                try
                {
                    error = await call(tag).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    error = e.GetType().Name + ": " + e.Message;
                }

                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                if (error is not null)
                    lock (errors) errors.Add(error);
            }
        }

        var sw = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => Task.Run(Client)));
        double elapsed = sw.Elapsed.TotalSeconds;
        if (series is not null)
        {
            foreach (double ms in latencies)
                series.Record(ms);
            series.Failures += errors.Count;
            series.Notes.AddRange(errors.Distinct().Take(3));
        }

        return elapsed;
    }
}
