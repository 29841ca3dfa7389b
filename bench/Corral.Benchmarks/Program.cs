using System.Text;
using Corral.Benchmarks.Harness;
using Corral.Benchmarks.Scenarios;

namespace Corral.Benchmarks;

internal static class Program
{
    private const string Usage = """
        Corral side-by-side benchmarks (issue 4).

          dotnet run -c Release --project bench/Corral.Benchmarks -- [options] [scenario…]

        Scenarios (default: all that can run here):
          escapee     1. escapee drain: output + finished call while a setsid grandchild holds the pipe
          spawn       2. spawn and reap /bin/true: sequential, 2 and 16 in flight
          throughput  3. output throughput: 1 GiB in 64 KiB chunks, 10 M lines of 80 bytes, vs the raw pipe
          teardown    4. teardown of a 1,000-process tree (half setsid escapees) vs cgroup.kill / kill(-pgid)
          scale       5. 1,000 concurrent trees of sleep: memory and threads per tree
          scan        6. pipe-holder / member scan cost with 1,000 and 5,000 processes on the machine
          server      7. Corral.Server over loopback HTTP (needs the server; see bench/README.md)
          ingest      8. a flood of output as a server task vs `corral run`; bytes on disk; memory per SSE follower
          fleet       9. server nodes on one PostgreSQL: throughput vs SQLite, claim latency, cross-node SSE latency (needs PostgreSQL, root)

        Options:
          --quick          small counts (a smoke run, minutes); results go to bench/results/quick/
          --scale X        multiply every iteration count by X
          --cap SECONDS    how long peers may hang on an escapee before their own timeout fires (default 3)
          --out DIR        results directory (default bench/results)
          --no-charts      skip the PNG charts
          --only A,B       only contenders whose name contains A or B (for profiling; not for published tables)
        """;

    public static async Task<int> Main(string[] args)
    {
        // Scenario 7 runs Corral.Server in a child process: this same program, in host mode.
        if (args.Length > 0 && args[0] == ServerScenario.HostFlag)
            return await ServerScenario.HostAsync(args[1..]);
        // Scenario 9 runs each node of a fleet the same way, with a database and a node id.
        if (args.Length > 0 && args[0] == FleetScenario.HostFlag)
            return await FleetScenario.HostAsync(args[1..]);

        var options = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--quick": options.Quick = true; break;
                case "--scale": options.Scale = double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture); break;
                case "--cap": options.Cap = TimeSpan.FromSeconds(double.Parse(args[++i], System.Globalization.CultureInfo.InvariantCulture)); break;
                case "--out": options.OutputDirectory = args[++i]; break;
                case "--no-charts": options.NoCharts = true; break;
                case "--only": options.Only.AddRange(args[++i].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)); break;
                case "-h" or "--help": Console.WriteLine(Usage); return 0;
                default:
                    if (args[i].StartsWith('-'))
                    {
                        Console.Error.WriteLine($"unknown option {args[i]}\n\n{Usage}");
                        return 2;
                    }

                    options.Scenarios.Add(args[i]);
                    break;
            }
        }

        IScenario[] all = [new EscapeeScenario(), new SpawnScenario(), new ThroughputScenario(), new TeardownScenario(), new ScaleScenario(), new ScanScenario(), new ServerScenario(), new IngestScenario(), new FleetScenario()];
        var unknown = options.Scenarios.Where(s => all.All(x => x.Key != s)).ToList();
        if (unknown.Count > 0)
        {
            Console.Error.WriteLine($"unknown scenario(s): {string.Join(", ", unknown)}\n\n{Usage}");
            return 2;
        }

        string repoRoot = FindRepoRoot();
        string results = options.OutputDirectory ?? Path.Combine(repoRoot, "bench", "results", options.Quick ? "quick" : "");
        Directory.CreateDirectory(results);
        var machine = MachineInfo.Read(repoRoot);
        string command = "dotnet run -c Release --project bench/Corral.Benchmarks --" + (args.Length > 0 ? " " + string.Join(' ', args) : "");
        var report = new RunReport { Machine = machine, Command = command, Quick = options.Quick };
        var context = new RunContext { Options = options, Report = report, ResultsDirectory = results, RepoRoot = repoRoot };

        Console.CancelKeyPress += (_, e) =>
        {
            // Never leave a benchmark process running: sweep everything this run tagged.
            Console.Error.WriteLine($"interrupted: killed {Leftovers.KillAll(Leftovers.WholeRun)} leftover process(es)");
            LaterDeletes.DeleteAll();
        };

        RunContext.Log($"machine: {machine.Summary}");
        RunContext.Log($"load average: {machine.LoadAverage}{(machine.Busy ? " (busy: numbers will be noisier than on an idle machine)" : "")}");
        RunContext.Log($"run id {Leftovers.RunId}; results in {results}");
        foreach (var scenario in all)
        {
            if (options.Scenarios.Count > 0 && !options.Scenarios.Contains(scenario.Key))
                continue;
            if (scenario.Unavailable is { } why)
            {
                report.Skipped.Add($"{scenario.Title}: {why}");
                RunContext.Log($"skipping {scenario.Key}: {why}");
                continue;
            }

            RunContext.Log($"=== {scenario.Title}");
            try
            {
                await scenario.RunAsync(context);
            }
            catch (Exception e)
            {
                report.Skipped.Add($"{scenario.Title}: failed with {e.GetType().Name}: {e.Message}");
                RunContext.Log($"{scenario.Key} FAILED: {e}");
            }
            finally
            {
                int swept = Leftovers.KillAll(Leftovers.WholeRun);
                if (swept > 0)
                    RunContext.Log($"swept {swept} leftover process(es) after {scenario.Key}");
            }

            Write(report, context);
        }

        report.FinishedAt = DateTimeOffset.UtcNow;
        report.LoadAtEnd = MachineInfo.LoadAverageNow();
        Write(report, context);
        int final = Leftovers.KillAll(Leftovers.WholeRun);
        LaterDeletes.DeleteAll();
        RunContext.Log($"done; final /proc sweep found {final} process(es) of this run alive");
        Console.WriteLine();
        Console.WriteLine(report.ToMarkdown());
        return 0;
    }

    private static void Write(RunReport report, RunContext context)
    {
        report.FinishedAt = DateTimeOffset.UtcNow;
        File.WriteAllText(Path.Combine(context.ResultsDirectory, "latest.md"), report.ToMarkdown(), new UTF8Encoding(false));
        string raw = Path.Combine(context.ResultsDirectory, "raw");
        Directory.CreateDirectory(raw);
        File.WriteAllText(Path.Combine(raw, $"{report.StartedAt:yyyyMMdd-HHmmss}.json"), report.ToJson(), new UTF8Encoding(false));
        File.WriteAllText(Path.Combine(raw, $"{report.StartedAt:yyyyMMdd-HHmmss}.md"), report.ToMarkdown(), new UTF8Encoding(false));
    }

    private static string FindRepoRoot()
    {
        foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "Corral.slnx")))
                    return dir.FullName;
            }
        }

        return Environment.CurrentDirectory;
    }
}
