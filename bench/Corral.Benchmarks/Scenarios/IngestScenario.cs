using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Benchmarks.Harness;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 8. What the server does with a flood of output, side by side with <c>corral run</c>: the same command (100 MB of
/// 100-byte lines) as a server task (stored once, framed into lines, events on disk) and under <c>corral run</c> into a
/// file on the same disk; the bytes the task leaves on disk for its output; and the memory an event-stream follower
/// costs, as the slope of the server's RSS over followers that never read.
/// </summary>
internal sealed class IngestScenario : IScenario
{
    public string Key => "ingest";
    public string Title => "8. Server ingest and followers";
    public string? Unavailable => File.Exists(CorralDll()) ? null : $"{CorralDll()} is missing (build the solution in Release)";

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        long bytes = o.Quick ? 20_000_000 : 100_000_000;
        string flood = $"yes $(printf %099d 0) | head -c {bytes}";
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Rate,
            Description =
                $"Flood: `bash -c '{flood}'` ({Stats.Bytes(bytes)} in 100-byte lines) as a command task through `POST /v1/tasks?wait` " +
                "(output stored once in the task's stdout file, a 3-byte line record each in its journal, flushed by group commit), and under " +
                "`corral run` with its stdout redirected to a file on the same disk. Target: the server ≥ 0.5 × `corral run`, and the task's files " +
                "≤ 1.2 × the output plus a small constant. Followers: the server's RSS, once settled, with 0 to 200 followers (steps of 50) that open the finished task's event " +
                "stream and never read (a replay that cannot move); the least-squares slope is the memory one follower costs (target ≤ 256 KiB).",
        };
        context.Report.Scenarios.Add(report);

        string data = ServerData.Create("ingest-");
        string serverTag = Leftovers.NewTag();
        var (server, baseUrl) = await ServerScenario.StartServerAsync(data, serverTag);
        using var _ = server;
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl), Timeout = TimeSpan.FromMinutes(10) };
        int rounds = o.N(5, 2);
        string? lastTask = null;
        var disk = new List<double>();
        try
        {
            for (int round = 0; round < rounds; round++)
            {
                var contenders = new List<(string Name, Role Role, Func<Task<string?>> Run)>
                {
                    ("Corral.Server: command task", Role.Corral, async () =>
                    {
                        var (error, id, onDisk) = await TaskAsync(http, data, flood, bytes).ConfigureAwait(false);
                        if (id is not null)
                        {
                            disk.Add(onDisk / (double)bytes);
                            if (lastTask is not null)
                                await http.DeleteAsync($"/v1/tasks/{lastTask}").ConfigureAwait(false);
                            lastTask = id;
                        }

                        return error;
                    }),
                    ("corral run > file", Role.Baseline, () => CorralRunAsync(data, flood, bytes)),
                };
                foreach (var (name, role, run) in Measure.Rotate(contenders, round))
                {
                    var s = report.Get("100-byte lines", name, role);
                    s.RateUnit = "MB/s";
                    s.Work = bytes / 1e6;
                    var clock = Stopwatch.StartNew();
                    string? error = await run().ConfigureAwait(false);
                    s.Record(clock.Elapsed.TotalMilliseconds);
                    if (error is not null)
                    {
                        s.Failures++;
                        s.Notes.Add(error);
                    }
                }

                RunContext.Log($"ingest: round {round + 1}/{rounds}");
            }

            if (lastTask is not null)
                await FollowersAsync(report, server, baseUrl, lastTask, o.Quick).ConfigureAwait(false);
        }
        finally
        {
            Native.kill(server.Id, Native.SIGTERM);
            if (!server.WaitForExit(TimeSpan.FromSeconds(30)))
                server.Kill(entireProcessTree: true);
            Leftovers.KillAll(serverTag);
            LaterDeletes.Add(data);
        }

        var viaServer = report.Series.FirstOrDefault(s => s.Role == Role.Corral && s.Case == "100-byte lines");
        var cli = report.Series.FirstOrDefault(s => s.Role == Role.Baseline && s.Case == "100-byte lines");
        if (viaServer?.Rate is { } a && cli?.Rate is { } b)
            report.Findings.Add($"Flood ingest: {Stats.Num(a)} MB/s as a server task vs {Stats.Num(b)} MB/s under `corral run`: {a / b:0.00}× (target ≥ 0.5×).");
        if (disk.Count > 0)
            report.Findings.Add($"On disk: the task's files are {disk.Average():0.000}× its output (target ≤ 1.2×).");
    }

    private static async Task<(string? Error, string? Id, long OnDisk)> TaskAsync(HttpClient http, string data, string command, long bytes)
    {
        var body = new JsonObject { ["agent"] = "command", ["command"] = new JsonArray("bash", "-c", command) };
        using var response = await http.PostAsJsonAsync("/v1/tasks?wait=600", body).ConfigureAwait(false);
        using var doc = JsonDocument.Parse(await response.Content.ReadAsStreamAsync().ConfigureAwait(false));
        var root = doc.RootElement;
        if (response.StatusCode != HttpStatusCode.OK)
            return ($"HTTP {(int)response.StatusCode}", null, 0);
        string id = root.GetProperty("id").GetString()!;
        long stored = root.GetProperty("output").GetProperty("storedBytes").GetInt64();
        if (stored != bytes)
            return ($"stored {stored} of {bytes} bytes", id, 0);
        long onDisk = new DirectoryInfo(Path.Combine(data, "tasks", id)).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        return (null, id, onDisk);
    }

    private static async Task<string?> CorralRunAsync(string data, string command, long bytes)
    {
        string file = Path.Combine(data, "corral-run.out");
        var psi = new ProcessStartInfo("bash") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"exec dotnet {CorralDll()} run -- bash -c '{command}' > {file}");
        using var p = Process.Start(psi)!;
        await p.WaitForExitAsync().ConfigureAwait(false);
        long length = new FileInfo(file).Length;
        File.Delete(file);
        return p.ExitCode != 0 ? $"exit {p.ExitCode}" : length != bytes ? $"wrote {length} of {bytes} bytes" : null;
    }

    /// <summary>RSS with 0 to 200 followers that never read: the slope is one follower's cost.</summary>
    private static async Task FollowersAsync(ScenarioReport report, Process server, string baseUrl, string id, bool quick)
    {
        var uri = new Uri(baseUrl);
        var sockets = new List<Socket>();
        var points = new List<(int Followers, long Rss)>();
        try
        {
            foreach (int target in new[] { 0, 50, 100, 150, 200 })
            {
                while (sockets.Count < target)
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                    await socket.ConnectAsync(uri.Host, uri.Port).ConfigureAwait(false);
                    await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /v1/tasks/{id}/events HTTP/1.1\r\nHost: {uri.Authority}\r\n\r\n")).ConfigureAwait(false);
                    sockets.Add(socket);
                }

                points.Add((target, await SettledResidentBytesAsync(server.Id, quick).ConfigureAwait(false)));
            }
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }

        var s = report.Get("followers that never read", "Corral.Server: RSS per follower", Role.Corral);
        s.RateUnit = "KiB/follower";
        // Least squares over every point: one sample's GC timing moves it less than an end-to-end difference.
        double meanX = points.Average(p => p.Followers), meanY = points.Average(p => (double)p.Rss);
        double slope = points.Sum(p => (p.Followers - meanX) * (p.Rss - meanY)) / points.Sum(p => (p.Followers - meanX) * (p.Followers - meanX)) / 1024;
        s.MeasuredRate = slope;
        s.Record(0);
        report.Findings.Add($"Followers: RSS {string.Join(", ", points.Select(p => $"{p.Rss >> 20} MiB with {p.Followers}"))}: about {slope:0} KiB per follower that never reads (target ≤ 256 KiB).");
    }

    /// <summary>
    /// The server's RSS once it has stopped moving (four readings 250 ms apart within 512 KiB): each new follower's
    /// replay runs until its socket is full, and only then does it cost what it will keep costing.
    /// </summary>
    private static async Task<long> SettledResidentBytesAsync(int pid, bool quick)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(quick ? 5 : 20);
        var recent = new Queue<long>();
        while (true)
        {
            recent.Enqueue(MachineInfo.ResidentBytes(pid));
            if (recent.Count > 4)
                recent.Dequeue();
            if ((recent.Count == 4 && recent.Max() - recent.Min() <= 512 * 1024) || DateTime.UtcNow > deadline)
                return recent.Last();
            await Task.Delay(250).ConfigureAwait(false);
        }
    }

    private static string CorralDll()
    {
        var here = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/'));
        string configuration = here.Parent!.Name; // bin/<Configuration>/net10.0
        string root = here.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
        return Path.Combine(root, "src", "Corral.Cli", "bin", configuration, "net10.0", "corral.dll");
    }
}
