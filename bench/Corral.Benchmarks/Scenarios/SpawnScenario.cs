using System.Diagnostics;
using Corral.Benchmarks.Contenders;
using Corral.Benchmarks.Harness;

namespace Corral.Benchmarks.Scenarios;

/// <summary>2. Spawn and reap <c>/bin/true</c> with both outputs captured: sequential, 2 and 16 in flight.</summary>
internal sealed class SpawnScenario : IScenario
{
    public string Key => "spawn";
    public string Title => "2. Spawn and reap";
    public string? Unavailable => null;

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Rate,
            Description = "`/bin/true` with stdout and stderr captured, run to completion, sequentially and with 2 and 16 calls in flight. " +
                          "median/p99 are per call; calls/s is total calls ÷ total wall time of the batches. Target: Corral ≥ 1.0 × Process.",
        };
        context.Report.Scenarios.Add(report);

        // Plain Corral side by side with Corral running the child as another user inside limits (target ≤ 1.1 × the cost).
        var contenders = Buffered.All().Concat(Buffered.Isolated()).Where(c => o.Includes(c.Name)).ToList();
        int rounds = o.N(10, 2);
        int batch = o.N(100, 20);
        var cases = new (string Name, int InFlight)[] { ("sequential", 1), ("2 in flight", 2), ("16 in flight", 16) };
        var seconds = new Dictionary<(string, string), double>();

        // Warm up every code path (JIT, thread pool, cgroup parent) outside the measurement.
        foreach (var c in contenders)
            await RunBatchAsync(c, 4, 2, Leftovers.NewTag(), null);

        RunContext.Log($"spawn: {rounds} rounds × {batch} calls per contender and case");
        for (int round = 0; round < rounds; round++)
        {
            foreach (var (name, inFlight) in cases)
            {
                foreach (var c in Measure.Rotate(contenders, round))
                {
                    var s = report.Get(name, c.Name, c.Role);
                    s.RateUnit = "calls/s";
                    string tag = Leftovers.NewTag();
                    double elapsed = await RunBatchAsync(c, batch, inFlight, tag, s);
                    s.LeftBehind += Leftovers.KillAll(tag);
                    seconds[(name, c.Name)] = seconds.GetValueOrDefault((name, c.Name)) + elapsed;
                    s.MeasuredRate = s.Calls / seconds[(name, c.Name)];
                }
            }

            RunContext.Log($"spawn: round {round + 1}/{rounds}");
        }

        foreach (var (name, _) in cases)
        {
            var process = report.Series.FirstOrDefault(s => s.Case == name && s.Contender == "Process");
            if (process is null)
                continue;
            foreach (var s in report.Series.Where(s => s.Case == name && s.Role == Role.Corral))
            {
                double r = s.Rate!.Value / process.Rate!.Value;
                report.Findings.Add($"{name} / {s.Contender}: {Stats.Num(s.Rate.Value)} calls/s = {r:0.00} × Process → target (≥ 1.0 × Process) **{(r >= 1.0 ? "met" : "missed")}**.");
            }
        }

        foreach (var (name, _) in cases)
        {
            foreach (var isolated in report.Series.Where(s => s.Case == name && s.Contender.EndsWith(" + user, limits", StringComparison.Ordinal)))
            {
                string plainName = isolated.Contender[..^" + user, limits".Length];
                if (report.Series.FirstOrDefault(s => s.Case == name && s.Contender == plainName) is not { } plain)
                    continue;
                // Cost per call is the inverse of the rate: how much longer a call takes with a user and limits.
                double cost = plain.Rate!.Value / isolated.Rate!.Value;
                report.Findings.Add($"{name} / {isolated.Contender}: {Stats.Num(isolated.Rate.Value)} calls/s vs {Stats.Num(plain.Rate.Value)} without = " +
                                    $"{cost:0.00} × the cost → target (≤ 1.1 ×) **{(cost <= 1.1 ? "met" : "missed")}**.");
            }
        }

        if (!o.NoCharts)
        {
            report.Chart = "spawn.png";
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), "Spawn and reap /bin/true: calls per second",
                "calls/s", report.Cases.ToList(), contenders.Select(c => c.Name).ToList(),
                (cs, cn) => report.Series.FirstOrDefault(s => s.Case == cs && s.Contender == cn)?.Rate, logScale: false);
        }
    }

    /// <summary>Runs <paramref name="count"/> calls with <paramref name="inFlight"/> workers; returns the wall time in seconds.</summary>
    private static async Task<double> RunBatchAsync(Buffered.Contender c, int count, int inFlight, string tag, Series? series)
    {
        int next = 0;
        var latencies = new double[count];
        var errors = new List<string>();
        var cap = TimeSpan.FromSeconds(30);

        async Task Worker()
        {
            while (true)
            {
                int i = Interlocked.Increment(ref next) - 1;
                if (i >= count)
                    return;
                long start = Stopwatch.GetTimestamp();
                try
                {
                    var r = await c.Run("/bin/true", [], tag, cap).ConfigureAwait(false);
                    if (r.Canceled)
                        lock (errors) errors.Add("timed out");
                }
                catch (Exception e)
                {
                    lock (errors) errors.Add(e.GetType().Name + ": " + e.Message);
                }

                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }

        var sw = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, inFlight)
            .Select(_ => c.Blocking ? Task.Factory.StartNew(() => Worker().GetAwaiter().GetResult(), TaskCreationOptions.LongRunning) : Task.Run(Worker))
            .ToArray();
        await Task.WhenAll(workers);
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
