using Corral.Benchmarks.Contenders;
using Corral.Benchmarks.Harness;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 1. The direct child prints and exits; a setsid grandchild keeps the pipe open for 5 s. Time from start to a
/// finished call with the complete output, bytes the caller did not get, and processes left behind.
/// </summary>
internal sealed class EscapeeScenario : IScenario
{
    public const int EscapeeSeconds = 5;

    public string Key => "escapee";
    public string Title => "1. Escapee drain";
    public string? Unavailable => null;

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Time,
            Description =
                $"`sh -c 'printf RESULT_LINE; setsid sleep {EscapeeSeconds} &'` and a 1 MiB variant (`head -c 1048576 /dev/zero` first). " +
                "Time from start to a finished call holding the complete output. Peers wait for the escapee's whole life, so each " +
                $"runs with its own timeout/cancellation set to {o.Cap.TotalSeconds:0} s (the cap); a capped call returns no output. " +
                "Target for Corral: ≤ 50 ms p99, 0 bytes lost, nothing left behind. The raw baseline completes on exit but does no teardown.",
        };
        context.Report.Scenarios.Add(report);

        var cases = new (string Name, string Script, long Expected)[]
        {
            ("RESULT_LINE", $"printf RESULT_LINE; setsid sleep {EscapeeSeconds} &", 11),
            ("1 MiB + RESULT_LINE", $"head -c 1048576 /dev/zero; printf RESULT_LINE; setsid sleep {EscapeeSeconds} &", (1 << 20) + 11),
        };
        var contenders = Buffered.All().Where(c => o.Includes(c.Name)).ToList();
        int rounds = o.N(200, 10);
        int peerRounds = Math.Min(rounds, o.N(5, 1));
        int stride = Math.Max(1, rounds / peerRounds);
        var hardCap = o.Cap + TimeSpan.FromSeconds(EscapeeSeconds + 2);

        RunContext.Log($"escapee: {rounds} rounds (peers every {stride}th round, {peerRounds} times), cap {o.Cap.TotalSeconds} s");
        foreach (var (_, script, _) in cases)
        {
            foreach (var c in contenders.Where(c => c.Role != Role.Peer))
                await Measure.CallAsync(() => c.Run("/bin/sh", ["-c", script], Leftovers.NewTag(), o.Cap), hardCap, Leftovers.NewTag());
        }

        for (int round = 0; round < rounds; round++)
        {
            bool peers = round % stride == 0 && round / stride < peerRounds;
            foreach (var (name, script, expected) in cases)
            {
                foreach (var c in Measure.Rotate(contenders, round))
                {
                    if (c.Role == Role.Peer && !peers)
                        continue;
                    string tag = Leftovers.NewTag();
                    var (ms, result, error, capped, left) = await Measure.CallAsync(() => c.Run("/bin/sh", ["-c", script], tag, o.Cap), hardCap, tag);
                    var s = report.Get(name, c.Name, c.Role);
                    s.CapMs = o.Cap.TotalMilliseconds;
                    s.Record(ms, expected, capped ? 0 : result?.Bytes ?? 0, capped);
                    s.LeftBehind += left;
                    if (error is not null)
                    {
                        s.Failures++;
                        s.Notes.Add(error);
                    }
                    else if (!capped && result is { } r && r.Tail?.EndsWith("RESULT_LINE", StringComparison.Ordinal) == false)
                    {
                        s.Notes.Add("output did not end with RESULT_LINE");
                    }
                }
            }

            if (round % Math.Max(1, rounds / 10) == 0)
                RunContext.Log($"escapee: round {round + 1}/{rounds}");
        }

        foreach (var s in report.Series.Where(s => s.Role == Role.Corral))
        {
            bool met = s.P99 <= 50 && s.BytesLost == 0 && s.LeftBehind == 0;
            report.Findings.Add($"{s.Case} / {s.Contender}: p99 {Stats.Ms(s.P99)}, {s.BytesLost} bytes lost, {s.LeftBehind} left behind → target (≤ 50 ms p99, 0 lost) **{(met ? "met" : "missed")}**.");
        }

        if (!o.NoCharts)
        {
            report.Chart = "escapee.png";
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), "Escapee drain: median time to a finished call",
                "ms", report.Cases.ToList(), contenders.Select(c => c.Name).ToList(),
                (cs, cn) => report.Series.FirstOrDefault(s => s.Case == cs && s.Contender == cn)?.Median, logScale: true);
        }
    }
}
