using System.Diagnostics;
using System.Globalization;
using System.Text;
using CliWrap;
using CliWrap.Buffered;
using Corral.Benchmarks.Harness;
using Corral.Processes;
using MedallionCommand = Medallion.Shell.Command;

namespace Corral.Benchmarks.Scenarios;

/// <summary>5. N concurrent trees of <c>sleep</c>, output captured: managed memory, RSS and threads per tree.</summary>
internal sealed class ScaleScenario : IScenario
{
    public string Key => "scale";
    public string Title => "5. Scale";
    public string? Unavailable => null;

    private sealed record Sample(double StartMs, double ManagedPerTree, double RssPerTree, int ThreadsAdded, double StopMs, int LeftBehind, string StopHow);

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        int n = o.Quick ? 100 : 1000;
        int reps = o.N(2, 1);
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Time,
            Description =
                $"{n:N0} concurrent `sleep 120` children, each with stdout and stderr captured, started from one process. After all are running, " +
                "managed heap (`GC.GetTotalMemory(true)`), RSS and thread count are compared with before starting them; the difference is divided by the " +
                "number of trees. \"stop all\" is Corral cancelling every tree and awaiting every completion (each one a full teardown); the peers' " +
                "processes are killed by the harness instead (they have no tree teardown to time), so that column is Corral-only.",
        };
        context.Report.Scenarios.Add(report);

        var contenders = new List<(string Name, Func<int, string, Task<Sample>> Run)>
        {
            ("Corral (cgroup)", (count, tag) => CorralAsync(ContainmentMode.Cgroup, count, tag)),
            ("Corral (session)", (count, tag) => CorralAsync(ContainmentMode.Session, count, tag)),
            ("Process", ProcessAsync),
            ("CliWrap", CliWrapAsync),
            ("MedallionShell", MedallionAsync),
        };

        contenders.RemoveAll(c => !o.Includes(c.Name));
        var samples = new Dictionary<string, List<Sample>>();
        for (int rep = 0; rep < reps; rep++)
        {
            foreach (var (name, run) in Measure.Rotate(contenders, rep))
            {
                string tag = Leftovers.NewTag();
                RunContext.Log($"scale: {name}, {n} trees (rep {rep + 1}/{reps})");
                var sample = await run(n, tag);
                int swept = Leftovers.KillAll(tag);
                sample = sample with { LeftBehind = sample.LeftBehind + (name.StartsWith("Corral", StringComparison.Ordinal) ? swept : 0) };
                (samples.TryGetValue(name, out var list) ? list : samples[name] = []).Add(sample);
            }
        }

        var sb = new StringBuilder();
        sb.AppendLine($"| Contender | trees | start all | managed / tree | RSS / tree | threads added | stop all | left behind |");
        sb.AppendLine("|---|--:|--:|--:|--:|--:|--:|--:|");
        foreach (var (name, _) in contenders)
        {
            var list = samples[name];
            double Med(Func<Sample, double> f) => Stats.Percentile(list.Select(f).ToList(), 50);
            string stop = list[0].StopHow == "corral" ? Stats.Ms(Med(x => x.StopMs)) : "n/a (harness kill)";
            string bold = name.StartsWith("Corral", StringComparison.Ordinal) ? $"**{name}**" : name;
            sb.AppendLine($"| {bold} | {n:N0} | {Stats.Ms(Med(x => x.StartMs))} | {Stats.Bytes(Med(x => x.ManagedPerTree))} | {Stats.Bytes(Med(x => x.RssPerTree))} | " +
                          $"{Med(x => x.ThreadsAdded):0} | {stop} | {list.Sum(x => x.LeftBehind)} |");
        }

        sb.AppendLine().Append($"Medians of {reps} repetition(s).");
        report.Sections.Add(sb.ToString());

        if (!o.NoCharts)
        {
            report.Chart = "scale.png";
            var groups = new List<string> { "managed KiB / tree", "RSS KiB / tree" };
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), $"{n:N0} concurrent trees: memory per tree",
                "KiB", groups, contenders.Select(c => c.Name).ToList(),
                (g, cn) =>
                {
                    var list = samples[cn];
                    return g.StartsWith("managed", StringComparison.Ordinal)
                        ? Stats.Percentile(list.Select(x => x.ManagedPerTree / 1024).ToList(), 50)
                        : Stats.Percentile(list.Select(x => x.RssPerTree / 1024).ToList(), 50);
                },
                logScale: false);
        }
    }

    private static (long Managed, long Rss, int Threads) Snapshot()
    {
        Measure.Settle();
        // Aggressive: return freed memory to the OS so RSS differences reflect what is live.
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
        long managed = GC.GetTotalMemory(true);
        long rss = 0;
        int threads = 0;
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                rss = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            else if (line.StartsWith("Threads:", StringComparison.Ordinal))
                threads = int.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1].Trim(), CultureInfo.InvariantCulture);
        }

        return (managed, rss, threads);
    }

    private static async Task WaitAllRunningAsync(string tag, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (Leftovers.Find(tag).Count(p => Leftovers.Comm(p) == "sleep") < count)
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException("not all trees started");
            await Task.Delay(100);
        }

        await Task.Delay(500);
    }

    private static Sample Measured((long Managed, long Rss, int Threads) before, int count, double startMs, double stopMs, string how)
    {
        var after = Snapshot();
        return new Sample(startMs, (double)(after.Managed - before.Managed) / count, (double)(after.Rss - before.Rss) / count,
            after.Threads - before.Threads, stopMs, 0, how);
    }

    private static async Task<Sample> CorralAsync(ContainmentMode mode, int count, string tag)
    {
        var before = Snapshot();
        var sw = Stopwatch.StartNew();
        var trees = new List<ProcessTree>(count);
        var spec = new ProcessSpec("/bin/sleep", "120") { Containment = mode, Environment = new Dictionary<string, string?> { [Leftovers.TagVariable] = tag } };
        for (int i = 0; i < count; i++)
            trees.Add(ProcessTree.Start(spec));
        double startMs = sw.Elapsed.TotalMilliseconds;
        await WaitAllRunningAsync(tag, count);
        var sample = Measured(before, count, startMs, 0, "corral");

        sw.Restart();
        foreach (var t in trees)
            t.Cancel();
        await Task.WhenAll(trees.Select(t => t.Completion));
        return sample with { StopMs = sw.Elapsed.TotalMilliseconds };
    }

    private static async Task<Sample> ProcessAsync(int count, string tag)
    {
        var before = Snapshot();
        var sw = Stopwatch.StartNew();
        var runs = new List<(Process P, Task Done)>(count);
        for (int i = 0; i < count; i++)
        {
            var psi = new ProcessStartInfo("/bin/sleep", ["120"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            psi.Environment[Leftovers.TagVariable] = tag;
            var p = Process.Start(psi)!;
            var o = p.StandardOutput.ReadToEndAsync();
            var e = p.StandardError.ReadToEndAsync();
            runs.Add((p, Task.WhenAll(o, e, p.WaitForExitAsync())));
        }

        double startMs = sw.Elapsed.TotalMilliseconds;
        await WaitAllRunningAsync(tag, count);
        var sample = Measured(before, count, startMs, 0, "harness");
        Leftovers.KillAll(tag);
        await Task.WhenAll(runs.Select(r => r.Done));
        foreach (var r in runs)
            r.P.Dispose();
        return sample;
    }

    private static async Task<Sample> CliWrapAsync(int count, string tag)
    {
        var before = Snapshot();
        var sw = Stopwatch.StartNew();
        var runs = new List<Task>(count);
        for (int i = 0; i < count; i++)
        {
            runs.Add(Cli.Wrap("/bin/sleep").WithArguments(["120"]).WithEnvironmentVariables(e => e.Set(Leftovers.TagVariable, tag))
                .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync());
        }

        double startMs = sw.Elapsed.TotalMilliseconds;
        await WaitAllRunningAsync(tag, count);
        var sample = Measured(before, count, startMs, 0, "harness");
        Leftovers.KillAll(tag);
        await Task.WhenAll(runs);
        return sample;
    }

    private static async Task<Sample> MedallionAsync(int count, string tag)
    {
        var before = Snapshot();
        var sw = Stopwatch.StartNew();
        var runs = new List<MedallionCommand>(count);
        for (int i = 0; i < count; i++)
            runs.Add(MedallionCommand.Run("/bin/sleep", ["120"], o => o.EnvironmentVariable(Leftovers.TagVariable, tag).ThrowOnError(false)));
        double startMs = sw.Elapsed.TotalMilliseconds;
        await WaitAllRunningAsync(tag, count);
        var sample = Measured(before, count, startMs, 0, "harness");
        Leftovers.KillAll(tag);
        await Task.WhenAll(runs.Select(r => r.Task));
        return sample;
    }
}
