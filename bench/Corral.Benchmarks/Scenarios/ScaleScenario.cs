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
                $"{n:N0} concurrent `sleep 120` children, each with stdout and stderr captured, started from one process (\"start all\" is the time spent in the start calls). " +
                "managed heap (`GC.GetTotalMemory(true)` after an aggressive GC), RSS and thread count are measured after the first half and after the " +
                "second half of the trees are running; the difference is divided by the second half's size (so whatever the process held before cancels out). \"stop all\" is Corral cancelling every tree and awaiting every completion (each one a full teardown); the peers' " +
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

    /// <summary>
    /// Starts <paramref name="count"/> trees in two halves and measures after each half: the per-tree cost is the
    /// difference between the two snapshots divided by the second half's size, so whatever the process held before
    /// (pooled buffers, JIT, earlier scenarios' garbage being trimmed) cancels out.
    /// </summary>
    private static async Task<Sample> TwoHalvesAsync(int count, string tag, Func<int, object> startOne, Func<List<object>, Task<(double Ms, string How)>> stopAll)
    {
        int half = count / 2;
        var started = new List<object>(count);
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < half; i++)
            started.Add(startOne(i));
        double startMs = sw.Elapsed.TotalMilliseconds;
        await WaitAllRunningAsync(tag, half);
        var first = Snapshot();
        sw.Restart();
        for (int i = half; i < count; i++)
            started.Add(startOne(i));
        startMs += sw.Elapsed.TotalMilliseconds;
        await WaitAllRunningAsync(tag, count);
        var second = Snapshot();
        int added = count - half;
        var (stopMs, how) = await stopAll(started);
        return new Sample(startMs, (double)(second.Managed - first.Managed) / added, (double)(second.Rss - first.Rss) / added,
            second.Threads - first.Threads, stopMs, 0, how);
    }

    private static Task<Sample> CorralAsync(ContainmentMode mode, int count, string tag)
    {
        var spec = new ProcessSpec("/bin/sleep", "120") { Containment = mode, Environment = new Dictionary<string, string?> { [Leftovers.TagVariable] = tag } };
        return TwoHalvesAsync(count, tag, _ => ProcessTree.Start(spec), async all =>
        {
            var sw = Stopwatch.StartNew();
            foreach (ProcessTree t in all)
                t.Cancel();
            await Task.WhenAll(all.Select(t => ((ProcessTree)t).Completion));
            return (sw.Elapsed.TotalMilliseconds, "corral");
        });
    }

    private static Task<Sample> ProcessAsync(int count, string tag) => TwoHalvesAsync(count, tag, _ =>
    {
        var psi = new ProcessStartInfo("/bin/sleep", ["120"]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment[Leftovers.TagVariable] = tag;
        var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        return (p, Task.WhenAll(o, e, p.WaitForExitAsync()));
    }, async all =>
    {
        Leftovers.KillAll(tag);
        foreach ((Process P, Task Done) run in all)
        {
            await run.Done;
            run.P.Dispose();
        }

        return (0, "harness");
    });

    private static Task<Sample> CliWrapAsync(int count, string tag) => TwoHalvesAsync(count, tag, _ =>
        Cli.Wrap("/bin/sleep").WithArguments(["120"]).WithEnvironmentVariables(e => e.Set(Leftovers.TagVariable, tag))
            .WithValidation(CommandResultValidation.None).ExecuteBufferedAsync().Task,
        async all =>
        {
            Leftovers.KillAll(tag);
            await Task.WhenAll(all.Cast<Task>());
            return (0, "harness");
        });

    private static Task<Sample> MedallionAsync(int count, string tag) => TwoHalvesAsync(count, tag, _ =>
        MedallionCommand.Run("/bin/sleep", ["120"], o => o.EnvironmentVariable(Leftovers.TagVariable, tag).ThrowOnError(false)),
        async all =>
        {
            Leftovers.KillAll(tag);
            await Task.WhenAll(all.Select(c => ((MedallionCommand)c).Task));
            return (0, "harness");
        });
}
