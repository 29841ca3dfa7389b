using System.Diagnostics;
using CliWrap;
using Corral.Benchmarks.Contenders;
using Corral.Benchmarks.Harness;
using Corral.Processes;
using MedallionCommand = Medallion.Shell.Command;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 3. Output throughput: the same writer (dd) for everyone, read by each library, and by a native reader (cat, wc -l)
/// through a default 64 KiB pipe and through a 1 MiB pipe (F_SETPIPE_SZ).
/// </summary>
internal sealed class ThroughputScenario : IScenario
{
    private const int LineLength = 80;

    public string Key => "throughput";
    public string Title => "3. Output throughput";
    public string? Unavailable => null;

    private sealed record Contender(string Name, Role Role, Func<string[], string, Task<long>> Run);

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        long chunks = o.Quick ? 1024 : 16384;
        long lines = o.Quick ? 1_000_000 : 10_000_000;
        long bytes = chunks * 65536;
        string linesFile = EnsureLinesFile(lines);
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Rate,
            Description =
                $"Writer for everyone: `dd bs=64k` ({Stats.Bytes(bytes)} of zeros in 64 KiB writes; {lines:N0} lines of {LineLength} bytes from a file in page cache). " +
                "Bytes: each library copies stdout into a counting sink (Corral `OutputTarget.ToStream`, and `ReadChunksAsync`; Process `BaseStream.CopyToAsync`; " +
                "CliWrap `PipeTarget.ToStream`; MedallionShell `RedirectTo`). Lines: each library yields every line as a string " +
                "(Corral `ReadLinesAsync`; Process `ReadLineAsync`; CliWrap `PipeTarget.ToDelegate`; MedallionShell `ReadLineAsync`). " +
                "Raw baselines: the same dd into `cat > /dev/null` or `wc -l`, through the default 64 KiB pipe and a 1 MiB pipe. " +
                "Target: ≥ 1.0 × the best .NET peer and ≥ 0.8 × the raw pipe (default size, the one every contender gets).",
        };
        context.Report.Scenarios.Add(report);

        string[] bytesWriter = ["/bin/dd", "if=/dev/zero", "bs=64k", $"count={chunks}", "status=none"];
        string[] linesWriter = ["/bin/dd", $"if={linesFile}", "bs=64k", "status=none"];

        var byteContenders = new List<Contender>
        {
            new("Corral (cgroup)", Role.Corral, (w, t) => CorralStream(ContainmentMode.Cgroup, w, t)),
            new("Corral (session)", Role.Corral, (w, t) => CorralStream(ContainmentMode.Session, w, t)),
            new("Corral (cgroup), ReadChunksAsync", Role.Corral, CorralChunks),
            new("Process", Role.Peer, ProcessStream),
            new("CliWrap", Role.Peer, CliWrapStream),
            new("MedallionShell", Role.Peer, MedallionStream),
            new("raw: dd → cat, 64 KiB pipe", Role.Baseline, (w, t) => Raw(w, ["/bin/cat"], t, 0, bytes)),
            new("raw: dd → cat, 1 MiB pipe", Role.Baseline, (w, t) => Raw(w, ["/bin/cat"], t, 1 << 20, bytes)),
        };
        var lineContenders = new List<Contender>
        {
            new("Corral (cgroup)", Role.Corral, (w, t) => CorralLines(ContainmentMode.Cgroup, w, t)),
            new("Corral (session)", Role.Corral, (w, t) => CorralLines(ContainmentMode.Session, w, t)),
            new("Process", Role.Peer, ProcessLines),
            new("CliWrap", Role.Peer, CliWrapLines),
            new("MedallionShell", Role.Peer, MedallionLines),
            new("raw: dd → cat, 64 KiB pipe", Role.Baseline, (w, t) => Raw(w, ["/bin/cat"], t, 0, lines)),
            new("raw: dd → wc -l, 64 KiB pipe", Role.Baseline, (w, t) => Raw(w, ["/usr/bin/wc", "-l"], t, 0, lines)),
            new("raw: dd → cat, 1 MiB pipe", Role.Baseline, (w, t) => Raw(w, ["/bin/cat"], t, 1 << 20, lines)),
        };

        byteContenders.RemoveAll(c => !o.Includes(c.Name));
        lineContenders.RemoveAll(c => !o.Includes(c.Name));
        var cases = new (string Name, string[] Writer, List<Contender> Contenders, long Expected, double Scale, string Unit)[]
        {
            ($"{Stats.Bytes(bytes)}, 64 KiB writes", bytesWriter, byteContenders, bytes, 1.0 / (1 << 30), "GiB/s"),
            ($"{lines / 1e6:0.#} M lines × {LineLength} B", linesWriter, lineContenders, lines, 1e-6, "M lines/s"),
        };

        int rounds = o.N(7, 2);
        RunContext.Log($"throughput: {rounds} rounds; warming up");
        foreach (var (_, writer, contenders, _, _, _) in cases)
        {
            foreach (var c in contenders)
            {
                string tag = Leftovers.NewTag();
                await c.Run(writer, tag);
                Leftovers.KillAll(tag);
            }
        }

        for (int round = 0; round < rounds; round++)
        {
            foreach (var (name, writer, contenders, expected, scale, unit) in cases)
            {
                foreach (var c in Measure.Rotate(contenders, round))
                {
                    Measure.Settle();
                    string tag = Leftovers.NewTag();
                    var s = report.Get(name, c.Name, c.Role);
                    s.Work = expected;
                    s.RateScale = scale;
                    s.RateUnit = unit;
                    var sw = Stopwatch.StartNew();
                    long got;
                    try
                    {
                        got = await c.Run(writer, tag);
                    }
                    catch (Exception e)
                    {
                        s.Failures++;
                        s.Notes.Add(e.GetType().Name + ": " + e.Message);
                        got = 0;
                    }

                    s.Record(sw.Elapsed.TotalMilliseconds);
                    if (got != expected)
                        s.Notes.Add($"counted {got:N0}, expected {expected:N0}");
                    s.LeftBehind += Leftovers.KillAll(tag);
                }
            }

            RunContext.Log($"throughput: round {round + 1}/{rounds}");
        }

        foreach (var (name, _, _, _, _, unit) in cases)
        {
            var inCase = report.Series.Where(s => s.Case == name).ToList();
            var bestPeer = inCase.Where(s => s.Role == Role.Peer).MaxBy(s => s.Rate ?? 0);
            var rawPipe = inCase.FirstOrDefault(s => s.Contender == "raw: dd → cat, 64 KiB pipe");
            if (bestPeer is null || rawPipe is null)
                continue;
            foreach (var s in inCase.Where(s => s.Role == Role.Corral))
            {
                double vsPeer = s.Rate!.Value / bestPeer.Rate!.Value;
                double vsRaw = s.Rate.Value / rawPipe.Rate!.Value;
                bool met = vsPeer >= 1.0 && vsRaw >= 0.8;
                report.Findings.Add($"{name} / {s.Contender}: {Stats.Num(s.Rate.Value)} {unit} = {vsPeer:0.00} × best peer ({bestPeer.Contender}), " +
                                    $"{vsRaw:0.00} × raw 64 KiB pipe → target (≥ 1.0 × peer, ≥ 0.8 × raw) **{(met ? "met" : "missed")}**.");
            }
        }

        if (!o.NoCharts)
        {
            report.Chart = "throughput.png";
            var names = cases.SelectMany(c => c.Contenders.Select(x => x.Name)).Distinct().ToList();
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), "Output throughput (MiB/s; lines are 80 B)",
                "MiB/s", report.Cases.ToList(), names,
                (cs, cn) => report.Series.FirstOrDefault(s => s.Case == cs && s.Contender == cn) is { Rate: not null } s
                    ? s.Work!.Value * (cs.Contains("lines") ? LineLength : 1) / (s.Median / 1000) / (1 << 20)
                    : null,
                logScale: false);
        }
    }

    private static string EnsureLinesFile(long lines)
    {
        string path = Path.Combine(Path.GetTempPath(), $"corral-bench-lines-{lines}.txt");
        if (File.Exists(path) && new FileInfo(path).Length == lines * LineLength)
            return path;
        RunContext.Log($"throughput: writing {path}");
        byte[] line = new byte[LineLength];
        Array.Fill(line, (byte)'x');
        line[^1] = (byte)'\n';
        const int perBlock = 819;
        byte[] block = new byte[perBlock * LineLength];
        for (int i = 0; i < perBlock; i++)
            line.CopyTo(block, i * LineLength);
        using (var f = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
        {
            long left = lines;
            while (left > 0)
            {
                int n = (int)Math.Min(perBlock, left);
                f.Write(block, 0, n * LineLength);
                left -= n;
            }
        }

        File.Move(path + ".tmp", path, overwrite: true);
        return path;
    }

    // Streaming consumers use OverflowPolicy.Wait (back-pressure, nothing dropped), as Process/CliWrap/MedallionShell
    // readers get from the pipe itself; the default DropNewest would drop bytes once the reader falls 64 MiB behind.
    private static ProcessSpec Spec(ContainmentMode mode, string[] writer, string tag) => new(writer[0], writer[1..])
    {
        Containment = mode,
        Environment = new Dictionary<string, string?> { [Leftovers.TagVariable] = tag },
        Limits = new OutputLimits { Overflow = OverflowPolicy.Wait },
    };

    private static async Task<long> CorralStream(ContainmentMode mode, string[] writer, string tag)
    {
        var sink = new CountingStream();
        await ProcessTree.RunAsync(Spec(mode, writer, tag) with { StandardOutput = OutputTarget.ToStream(sink) });
        return sink.Count;
    }

    private static async Task<long> CorralChunks(string[] writer, string tag)
    {
        await using var tree = ProcessTree.Start(Spec(ContainmentMode.Cgroup, writer, tag));
        long n = 0;
        await foreach (var chunk in tree.ReadChunksAsync())
            n += chunk.Bytes.Length;
        await tree.Completion;
        return n;
    }

    private static async Task<long> CorralLines(ContainmentMode mode, string[] writer, string tag)
    {
        await using var tree = ProcessTree.Start(Spec(mode, writer, tag));
        long n = 0;
        await foreach (var line in tree.ReadLinesAsync())
        {
            if (line.Text.Length == LineLength - 1)
                n++;
        }

        await tree.Completion;
        return n;
    }

    private static ProcessStartInfo Psi(string[] writer, string tag)
    {
        var psi = new ProcessStartInfo(writer[0], writer[1..]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.Environment[Leftovers.TagVariable] = tag;
        return psi;
    }

    private static async Task<long> ProcessStream(string[] writer, string tag)
    {
        using var p = Process.Start(Psi(writer, tag))!;
        var sink = new CountingStream();
        var err = p.StandardError.ReadToEndAsync();
        await p.StandardOutput.BaseStream.CopyToAsync(sink);
        await err;
        await p.WaitForExitAsync();
        return sink.Count;
    }

    private static async Task<long> ProcessLines(string[] writer, string tag)
    {
        using var p = Process.Start(Psi(writer, tag))!;
        var err = p.StandardError.ReadToEndAsync();
        long n = 0;
        while (await p.StandardOutput.ReadLineAsync() is { } line)
        {
            if (line.Length == LineLength - 1)
                n++;
        }

        await err;
        await p.WaitForExitAsync();
        return n;
    }

    private static Command Cli(string[] writer, string tag) => CliWrap.Cli.Wrap(writer[0]).WithArguments(writer[1..])
        .WithEnvironmentVariables(e => e.Set(Leftovers.TagVariable, tag)).WithValidation(CommandResultValidation.None);

    private static async Task<long> CliWrapStream(string[] writer, string tag)
    {
        var sink = new CountingStream();
        await (Cli(writer, tag) | PipeTarget.ToStream(sink)).ExecuteAsync();
        return sink.Count;
    }

    private static async Task<long> CliWrapLines(string[] writer, string tag)
    {
        long n = 0;
        await (Cli(writer, tag) | PipeTarget.ToDelegate(line =>
        {
            if (line.Length == LineLength - 1)
                n++;
        })).ExecuteAsync();
        return n;
    }

    private static MedallionCommand Medallion(string[] writer, string tag) =>
        MedallionCommand.Run(writer[0], writer[1..], o => o.EnvironmentVariable(Leftovers.TagVariable, tag).ThrowOnError(false));

    private static async Task<long> MedallionStream(string[] writer, string tag)
    {
        var sink = new CountingStream();
        var cmd = Medallion(writer, tag).RedirectTo(sink);
        await cmd.Task;
        return sink.Count;
    }

    private static async Task<long> MedallionLines(string[] writer, string tag)
    {
        var cmd = Medallion(writer, tag);
        long n = 0;
        while (await cmd.StandardOutput.ReadLineAsync() is { } line)
        {
            if (line.Length == LineLength - 1)
                n++;
        }

        await cmd.Task;
        return n;
    }

    private static Task<long> Raw(string[] writer, string[] reader, string tag, int pipeSize, long expected)
    {
        // The native reader's own count is not read back; both programs are real and exit with status 0.
        RawProcess.Pipeline(writer, reader, RawProcess.Environment(tag), pipeSize);
        return Task.FromResult(expected);
    }
}
