using System.Diagnostics;
using System.Text;
using Corral.Benchmarks.Contenders;
using Corral.Benchmarks.Harness;
using Corral.Processes;
using Corral.Processes.Internal.Containment;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 6. What session (fallback) mode pays for its /proc scans, with 1,000 and 5,000 processes on the machine: the
/// member scan behind <c>SessionTree.IsEmpty</c>, <c>PipeHolders.Find</c>, and whole calls, against cgroup mode and
/// against the floors (reading every /proc/PID/stat; readlink of every /proc/*/fd/*).
/// </summary>
internal sealed class ScanScenario : IScenario
{
    public string Key => "scan";
    public string Title => "6. Pipe-holder scan (session mode)";
    public string? Unavailable => null;

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        int[] levels = o.Quick ? [1000, 2000] : [1000, 5000];
        int n = o.N(20, 5);
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Time,
            Description =
                "Idle `sleep` processes are added until the machine runs the given number of processes. Measured: the member scan that session mode " +
                "runs at completion and during teardown (`ProcScanner.FindMembers`, what `SessionTree.IsEmpty` calls: session/group, environment tag, " +
                "pipe holders), `PipeHolders.Find(pid)`, and whole `RunAsync` calls in both modes; floors: reading every `/proc/PID/stat`, and " +
                "`readlink` of every `/proc/*/fd/*`.",
        };
        context.Report.Scenarios.Add(report);

        var sb = new StringBuilder();
        sb.AppendLine("| processes on machine | measurement | n | median | p99 | per process |");
        sb.AppendLine("|--:|---|--:|--:|--:|--:|");
        var chartValues = new Dictionary<(string, string), double>();
        var names = new List<string>();
        foreach (int level in levels)
        {
            string fillTag = Leftovers.NewTag();
            var fillers = Fill(level, fillTag);
            int actual = Leftovers.CountProcesses();
            RunContext.Log($"scan: {actual} processes on the machine ({fillers.Count} fillers)");
            try
            {
                var (target, outR, errR) = SpawnTarget(fillTag);
                var criteria = new TreeCriteria(target, "CORRAL_TREE_ID=" + Guid.NewGuid().ToString("N"),
                    [Native.ReadLink($"/proc/self/fd/{outR}")!, Native.ReadLink($"/proc/self/fd/{errR}")!]);
                var protectedPids = new Lazy<HashSet<int>>(ProcScanner.ProtectedPids());

                // Whole calls leave their tag behind for a leak check done after the timed region (a /proc scan itself).
                var pendingTags = new List<string>();
                Func<Task> Call(ContainmentMode mode, string file, string[] args) => () =>
                {
                    string tag = Leftovers.NewTag();
                    pendingTags.Add(tag);
                    return Buffered.Corral(mode, file, args, tag, TimeSpan.FromSeconds(30));
                };

                var measurements = new List<(string Name, Func<Task> Run)>
                {
                    ("member scan (SessionTree.IsEmpty)", () => { ProcScanner.FindMembers(criteria, protectedPids); return Task.CompletedTask; }),
                    ("PipeHolders.Find(pid)", () => { PipeHolders.Find(target); return Task.CompletedTask; }),
                    ("floor: read every /proc/PID/stat", () => { FloorStat(); return Task.CompletedTask; }),
                    ("floor: readlink every /proc/*/fd/*", () => { FloorFds(); return Task.CompletedTask; }),
                    ("Corral (session): RunAsync /bin/true", Call(ContainmentMode.Session, "/bin/true", [])),
                    ("Corral (cgroup): RunAsync /bin/true", Call(ContainmentMode.Cgroup, "/bin/true", [])),
                    ("Corral (session): escapee RESULT_LINE", Call(ContainmentMode.Session, "/bin/sh", ["-c", "printf RESULT_LINE; setsid sleep 5 &"])),
                    ("Corral (cgroup): escapee RESULT_LINE", Call(ContainmentMode.Cgroup, "/bin/sh", ["-c", "printf RESULT_LINE; setsid sleep 5 &"])),
                };
                var times = measurements.ToDictionary(m => m.Name, _ => new List<double>());
                int leftBehind = 0;
                foreach (var m in measurements)
                    await m.Run();
                foreach (string tag in pendingTags)
                    Leftovers.KillAll(tag);
                pendingTags.Clear();
                for (int i = 0; i < n; i++)
                {
                    foreach (var m in Measure.Rotate(measurements, i))
                    {
                        var sw = Stopwatch.StartNew();
                        await m.Run();
                        times[m.Name].Add(sw.Elapsed.TotalMilliseconds);
                        foreach (string tag in pendingTags)
                            leftBehind += Leftovers.KillAll(tag);
                        pendingTags.Clear();
                    }
                }

                foreach (var m in measurements)
                {
                    var t = times[m.Name];
                    double median = Stats.Percentile(t, 50);
                    sb.AppendLine($"| {actual:N0} | {m.Name} | {t.Count} | {Stats.Ms(median)} | {Stats.Ms(Stats.Percentile(t, 99))} | {median * 1000 / actual:0.0} µs |");
                    chartValues[($"{level:N0} processes", m.Name)] = median;
                    if (!names.Contains(m.Name))
                        names.Add(m.Name);
                }

                if (leftBehind > 0)
                    sb.AppendLine($"| {actual:N0} | **{leftBehind} process(es) of Corral calls left behind** | | | | |");
                Native.kill(target, Native.SIGKILL);
                RawProcess.Reap(target);
                Native.close(outR);
                Native.close(errR);
            }
            finally
            {
                foreach (int pid in fillers)
                    Native.kill(pid, Native.SIGKILL);
                foreach (int pid in fillers)
                    RawProcess.Reap(pid);
                Leftovers.KillAll(fillTag);
            }
        }

        report.Sections.Add(sb.ToString());
        if (!o.NoCharts)
        {
            report.Chart = "scan.png";
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), "Session mode: scan costs by processes on the machine (median)",
                "ms", levels.Select(l => $"{l:N0} processes").ToList(), names,
                (g, m) => chartValues.TryGetValue((g, m), out var v) ? v : null, logScale: true);
        }
    }

    private static List<int> Fill(int level, string tag)
    {
        var pids = new List<int>();
        int devNull = Native.OpenPath("/dev/null", Native.O_RDONLY);
        int devNullW = Native.OpenPath("/dev/null", Native.O_WRONLY);
        var env = RawProcess.Environment(tag);
        try
        {
            int missing = level - Leftovers.CountProcesses();
            for (int i = 0; i < missing; i++)
                pids.Add(RawProcess.Spawn("/bin/sleep", ["/bin/sleep", "900"], env, devNull, devNullW, devNullW));
        }
        finally
        {
            Native.close(devNull);
            Native.close(devNullW);
        }

        return pids;
    }

    /// <summary>A setsid sleep whose stdout/stderr are pipes we hold: the "tree" the scans look for.</summary>
    private static (int Pid, int OutR, int ErrR) SpawnTarget(string tag)
    {
        int devNull = Native.OpenPath("/dev/null", Native.O_RDONLY);
        var (outR, outW) = Native.Pipe();
        var (errR, errW) = Native.Pipe();
        int pid = RawProcess.Spawn("/bin/sleep", ["/bin/sleep", "900"], RawProcess.Environment(tag), devNull, outW, errW, setsid: true);
        Native.close(devNull);
        Native.close(outW);
        Native.close(errW);
        return (pid, outR, errR);
    }

    private static void FloorStat()
    {
        byte[] buffer = new byte[1024];
        foreach (int pid in Leftovers.AllPids())
            Native.ReadFile($"/proc/{pid}/stat", ref buffer);
    }

    private static void FloorFds()
    {
        foreach (int pid in Leftovers.AllPids())
        {
            try
            {
                foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
                    Native.ReadLink(fd);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }
}
