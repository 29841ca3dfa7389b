using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Corral.Benchmarks.Harness;

internal enum Role
{
    Corral,
    Peer,
    Baseline,
}

/// <summary>Which way a scenario's primary number is better.</summary>
internal enum Primary
{
    /// <summary>Median time per unit; lower is better.</summary>
    Time,

    /// <summary>A rate (calls/s, GiB/s, lines/s) derived from the samples; higher is better.</summary>
    Rate,
}

/// <summary>All samples of one contender in one case of one scenario.</summary>
internal sealed class Series
{
    public required string Scenario { get; init; }
    public required string Case { get; init; }
    public required string Contender { get; init; }
    public required Role Role { get; init; }

    /// <summary>Per-unit wall time in milliseconds (a call, a batch's calls, a teardown).</summary>
    public List<double> Ms { get; } = [];

    /// <summary>Work per sample for the rate (bytes, lines); the rate is Work / median time × RateScale.</summary>
    public double? Work { get; set; }

    public double RateScale { get; set; } = 1;

    public string? RateUnit { get; set; }

    /// <summary>A rate measured directly (e.g. calls per second over whole batches); wins over Work.</summary>
    public double? MeasuredRate { get; set; }

    public long Calls { get; set; }
    public long BytesExpected { get; set; }
    public long BytesDelivered { get; set; }
    public long LeftBehind { get; set; }
    public long Capped { get; set; }
    public long Failures { get; set; }
    public double? CapMs { get; set; }
    public List<string> Notes { get; } = [];

    [JsonIgnore] public double Median => Stats.Percentile(Ms, 50);
    [JsonIgnore] public double P99 => Stats.Percentile(Ms, 99);

    [JsonIgnore]
    public double? Rate => MeasuredRate ?? (Work is { } w && Ms.Count > 0 && Median > 0 ? w / (Median / 1000.0) * RateScale : null);

    [JsonIgnore] public long BytesLost => Math.Max(0, BytesExpected - BytesDelivered);

    public void Record(double ms, long expected = 0, long delivered = 0, bool capped = false)
    {
        Ms.Add(ms);
        Calls++;
        BytesExpected += expected;
        BytesDelivered += delivered;
        if (capped)
            Capped++;
    }
}

internal static class Stats
{
    /// <summary>Nearest-rank percentile (p99 of fewer than 100 samples is the maximum).</summary>
    public static double Percentile(IReadOnlyList<double> values, double p)
    {
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.OrderBy(v => v).ToArray();
        int rank = (int)Math.Ceiling(p / 100.0 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }

    public static string Ms(double ms) => double.IsNaN(ms) ? "–"
        : ms >= 1000 ? (ms / 1000).ToString("0.00", CultureInfo.InvariantCulture) + " s"
        : ms >= 100 ? ms.ToString("0", CultureInfo.InvariantCulture) + " ms"
        : ms >= 10 ? ms.ToString("0.0", CultureInfo.InvariantCulture) + " ms"
        : ms.ToString("0.00", CultureInfo.InvariantCulture) + " ms";

    public static string Num(double v, int digits = 2) => v >= 100 ? v.ToString("N0", CultureInfo.InvariantCulture)
        : v.ToString("N" + digits, CultureInfo.InvariantCulture);

    public static string Bytes(double b) => b >= 1 << 20 ? Num(b / (1 << 20)) + " MiB" : b >= 1024 ? Num(b / 1024) + " KiB" : Num(b, 0) + " B";
}

/// <summary>One scenario's results: its series, the way to compare them, free-form sections and a chart.</summary>
internal sealed class ScenarioReport
{
    public required string Key { get; init; }
    public required string Title { get; init; }
    public required Primary Primary { get; init; }
    public string? Description { get; set; }
    public List<Series> Series { get; } = [];
    public List<string> Sections { get; } = [];
    public List<string> Findings { get; } = [];
    public string? Chart { get; set; }

    public Series Get(string @case, string contender, Role role)
    {
        var s = Series.FirstOrDefault(x => x.Case == @case && x.Contender == contender);
        if (s is null)
        {
            s = new Series { Scenario = Key, Case = @case, Contender = contender, Role = role };
            Series.Add(s);
        }

        return s;
    }

    public IEnumerable<string> Cases => Series.Select(s => s.Case).Distinct();

    /// <summary>Corral ÷ best peer in the primary metric, for a Corral series (null when there is no peer).</summary>
    public (double Ratio, string Text)? RatioToBestPeer(Series corral)
    {
        var peers = Series.Where(s => s.Case == corral.Case && s.Role == Role.Peer && s.Ms.Count > 0).ToList();
        if (peers.Count == 0 || corral.Ms.Count == 0)
            return null;
        if (Primary == Primary.Rate)
        {
            var best = peers.Where(p => p.Rate is not null).MaxBy(p => p.Rate!.Value);
            if (best is null || corral.Rate is null)
                return null;
            double r = corral.Rate.Value / best.Rate!.Value;
            return (r, $"{r:0.00}× ({best.Contender})");
        }
        else
        {
            var best = peers.MinBy(p => p.Median)!;
            double r = corral.Median / best.Median;
            // A capped peer's real time is at least the cap, so the true ratio is at most this.
            string bound = best.Capped > 0 ? "≤ " : "";
            return (r, $"{bound}{r.ToString(r < 0.01 ? "0.0000" : "0.00", CultureInfo.InvariantCulture)}× ({best.Contender})");
        }
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"### {Title}").AppendLine();
        if (Description is not null)
            sb.AppendLine(Description).AppendLine();
        if (Series.Count > 0)
        {
            bool rate = Series.Any(s => s.Rate is not null);
            bool bytes = Series.Any(s => s.BytesExpected > 0);
            string rateUnit = Series.Select(s => s.RateUnit).FirstOrDefault(u => u is not null) ?? "";
            sb.Append("| Case | Contender | n | median | p99 |");
            if (rate) sb.Append($" {rateUnit} |");
            if (bytes) sb.Append(" bytes lost / call |");
            sb.Append(" left behind / call | Corral ÷ best peer |").AppendLine();
            sb.Append("|---|---|--:|--:|--:|");
            if (rate) sb.Append("--:|");
            if (bytes) sb.Append("--:|");
            sb.Append("--:|---|").AppendLine();
            foreach (var c in Cases)
            {
                foreach (var s in Series.Where(x => x.Case == c))
                {
                    string name = s.Role switch { Role.Corral => $"**{s.Contender}**", Role.Baseline => $"_{s.Contender}_", _ => s.Contender };
                    string capped = s.Capped > 0 ? $" ({s.Capped} capped at {Stats.Ms(s.CapMs ?? 0)})" : "";
                    sb.Append($"| {c} | {name} | {s.Ms.Count} | {(s.Capped > 0 && s.Median >= (s.CapMs ?? double.MaxValue) ? "≥ " : "")}{Stats.Ms(s.Median)}{capped} | {Stats.Ms(s.P99)} |");
                    if (rate) sb.Append($" {(s.Rate is { } r ? Stats.Num(r) : "–")} |");
                    if (bytes) sb.Append($" {(s.Calls > 0 ? Stats.Num((double)s.BytesLost / s.Calls, 0) : "–")} |");
                    sb.Append($" {(s.Calls > 0 ? Stats.Num((double)s.LeftBehind / s.Calls, s.LeftBehind == 0 ? 0 : 1) : "–")} |");
                    sb.Append($" {(s.Role == Role.Corral && RatioToBestPeer(s) is { } ratio ? ratio.Text : "")} |");
                    sb.AppendLine();
                }
            }

            sb.AppendLine();
            foreach (var s in Series.Where(x => x.Notes.Count > 0))
                sb.AppendLine($"- {s.Case} / {s.Contender}: {string.Join("; ", s.Notes.Distinct())}");
            if (Series.Any(x => x.Notes.Count > 0))
                sb.AppendLine();
        }

        foreach (string section in Sections)
            sb.AppendLine(section).AppendLine();
        foreach (string f in Findings)
            sb.AppendLine($"- {f}");
        if (Findings.Count > 0)
            sb.AppendLine();
        if (Chart is not null)
            sb.AppendLine($"![{Title}]({Chart})").AppendLine();
        return sb.ToString();
    }
}

internal sealed class RunReport
{
    public required MachineInfo Machine { get; init; }
    public required string Command { get; init; }
    public required bool Quick { get; init; }
    public DateTimeOffset StartedAt { get; init; } = DateTimeOffset.UtcNow;
    public DateTimeOffset FinishedAt { get; set; }
    public string? LoadAtEnd { get; set; }
    public List<ScenarioReport> Scenarios { get; } = [];
    public List<string> Skipped { get; } = [];

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"## Results{(Quick ? " (--quick smoke run: small counts, not for publication)" : "")}").AppendLine();
        sb.AppendLine($"- Date: {StartedAt:yyyy-MM-dd HH:mm} UTC (run took {(FinishedAt - StartedAt).TotalMinutes:0.0} min)");
        sb.AppendLine($"- Machine: {Machine.Summary}");
        sb.AppendLine($"- Load average at start: {Machine.LoadAverage}; at end: {LoadAtEnd}{(Machine.Busy ? " — **the machine was busy (load ≥ 0.5) during this run**" : "")}");
        sb.AppendLine($"- Commit: {Machine.Commit}");
        sb.AppendLine($"- Command: `{Command}`");
        sb.AppendLine("- Times are wall-clock per call (or per teardown). p99 is nearest-rank: with fewer than 100 samples it is the maximum.");
        sb.AppendLine("- **Corral** rows are the library under test, _italic_ rows are baselines (no library, or the kernel alone); the ratio compares each Corral row with the best peer library in the same case (time: lower is better; rates: higher is better).");
        sb.AppendLine("- \"left behind\": processes of the call still alive after it returned (found by an environment tag in /proc, then killed by the harness).");
        sb.AppendLine();
        foreach (var s in Scenarios)
            sb.Append(s.ToMarkdown());
        foreach (var s in Skipped)
            sb.AppendLine($"- Not run: {s}");
        return sb.ToString();
    }

    public string ToJson() => JsonSerializer.Serialize(this, new JsonSerializerOptions
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    });
}
