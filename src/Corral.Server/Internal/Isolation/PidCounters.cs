using System.Globalization;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// The kernel's PID allocation counters at one moment: the last PID handed out (<c>/proc/loadavg</c>), the tasks
/// (threads) that exist, every fork since boot (<c>/proc/stat</c>), and <c>pid_max</c>.
/// </summary>
internal sealed record PidCounters(int LastPid, int Tasks, long Forks, int PidMax)
{
    /// <summary>PIDs below this are not handed out again once allocation has wrapped (the kernel's RESERVED_PIDS).</summary>
    private const int ReservedPids = 300;

    /// <summary>The counters now, or <c>null</c> where /proc does not give them.</summary>
    public static PidCounters? Read()
    {
        try
        {
            // "0.52 0.58 0.59 1/234 27955": runnable/total tasks, then the last PID.
            string[] load = File.ReadAllText("/proc/loadavg").Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            string? processes = File.ReadLines("/proc/stat").FirstOrDefault(l => l.StartsWith("processes ", StringComparison.Ordinal));
            if (load.Length < 5 || processes is null || load[3].Split('/') is not [_, var tasks]
                || !int.TryParse(tasks, NumberStyles.None, CultureInfo.InvariantCulture, out int taskCount)
                || !int.TryParse(load[4], NumberStyles.None, CultureInfo.InvariantCulture, out int last)
                || !long.TryParse(processes.AsSpan("processes ".Length).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out long forks)
                || !int.TryParse(File.ReadAllText("/proc/sys/kernel/pid_max").Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out int max))
                return null;
            return new PidCounters(last, taskCount, forks, max);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// Whether PID allocation may have gone round between two samples: the last PID went down, or there were enough
    /// forks to go all the way round (pid_max - 300, less the PIDs in use, which are at most the tasks seen then plus
    /// those created since). A pure function of the numbers.
    /// </summary>
    public static bool MayHaveWrapped(PidCounters before, PidCounters after)
    {
        long forks = after.Forks - before.Forks;
        return after.LastPid < before.LastPid || forks < 0 || forks + Math.Max(before.Tasks, after.Tasks) + forks >= after.PidMax - ReservedPids;
    }
}
