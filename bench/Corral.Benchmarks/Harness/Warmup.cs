using System.Globalization;

namespace Corral.Benchmarks.Harness;

/// <summary>
/// Warms a contender until the runtime has stopped compiling it. A fixed count of warm-up calls is not enough for a
/// large program: .NET's tiered compilation (with dynamic PGO) keeps instrumenting and recompiling a server's hot
/// methods for many seconds, and its background compiler then takes a core of a 2-core machine away from the
/// measured batches. So warm-up batches run until two in a row pass in which the process's tiered-compilation
/// thread used (almost) no CPU.
/// </summary>
internal static class Warmup
{
    private const string CompilerThread = ".NET Tiered Com"; // the comm of ".NET Tiered Compilation Worker", cut to 15 characters

    /// <summary>Runs <paramref name="batch"/> until the JIT of <paramref name="pid"/> spent at most 20 ms in each of two in a row, or <paramref name="deadline"/> passed; how many batches ran.</summary>
    public static Task<int> UntilCompiledAsync(int pid, Func<Task> batch, TimeSpan deadline) => UntilCompiledAsync([pid], batch, deadline);

    /// <summary>Runs <paramref name="batch"/> until the JIT of each of <paramref name="pids"/> spent at most 20 ms in each of two in a row, or <paramref name="deadline"/> passed; how many batches ran.</summary>
    public static async Task<int> UntilCompiledAsync(IReadOnlyList<int> pids, Func<Task> batch, TimeSpan deadline)
    {
        var until = DateTime.UtcNow + deadline;
        int batches = 0, quiet = 0;
        while (true)
        {
            var before = pids.Select(CompilerTicks).ToList();
            await batch().ConfigureAwait(false);
            batches++;
            long spent = pids.Select((pid, i) => CompilerTicks(pid).Sum(t => t.Value - before[i].GetValueOrDefault(t.Key))).Max();
            quiet = spent * 1000 / TicksPerSecond <= 20 ? quiet + 1 : 0;
            // First calls are compiled on the calling threads and the background compiler starts late, so one quiet
            // batch proves nothing at the start: two in a row, after at least three.
            if ((quiet >= 2 && batches >= 3) || DateTime.UtcNow > until)
                return batches;
        }
    }

    private static readonly long TicksPerSecond = 100; // USER_HZ on Linux

    /// <summary>CPU ticks (user + system) of each tiered-compilation thread of <paramref name="pid"/>, by thread id.</summary>
    private static Dictionary<int, long> CompilerTicks(int pid)
    {
        var ticks = new Dictionary<int, long>();
        string[] tasks;
        try { tasks = Directory.GetDirectories($"/proc/{pid}/task"); }
        catch (IOException) { return ticks; }
        foreach (string task in tasks)
        {
            try
            {
                var (comm, fields) = ProcStat.Read(Path.Combine(task, "stat"));
                if (!comm.StartsWith(CompilerThread, StringComparison.Ordinal))
                    continue;
                // utime and stime: fields 14 and 15.
                ticks[int.Parse(Path.GetFileName(task), CultureInfo.InvariantCulture)] =
                    long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // The thread ended meanwhile.
            }
        }

        return ticks;
    }
}
