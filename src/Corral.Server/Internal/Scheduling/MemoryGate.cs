using System.Globalization;
using Corral.Server.Hosting;

namespace Corral.Server.Internal.Scheduling;

/// <summary>What the node's memory looks like now: from <c>/proc/meminfo</c> and <c>/proc/pressure/memory</c>.</summary>
/// <param name="TotalBytes">MemTotal.</param>
/// <param name="AvailableBytes">MemAvailable.</param>
/// <param name="Pressure">PSI <c>some avg10</c>: the share of the last 10 s some task waited for memory, in percent; <c>null</c> where the kernel has no PSI.</param>
internal readonly record struct MemoryFacts(long TotalBytes, long AvailableBytes, double? Pressure)
{
    public static MemoryFacts Read()
    {
        long total = 0, available = 0;
        foreach (string line in File.ReadLines("/proc/meminfo"))
        {
            if (line.StartsWith("MemTotal:", StringComparison.Ordinal))
                total = Kibibytes(line) * 1024;
            else if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                available = Kibibytes(line) * 1024;
        }

        double? pressure = null;
        try
        {
            // "some avg10=0.00 avg60=0.00 avg300=0.00 total=0"
            string some = File.ReadLines("/proc/pressure/memory").First();
            int at = some.IndexOf("avg10=", StringComparison.Ordinal);
            if (at >= 0 && double.TryParse(some[(at + 6)..].Split(' ')[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double p))
                pressure = p;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
        }

        return new MemoryFacts(total, available, pressure);
    }

    private static long Kibibytes(string line) =>
        long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
}

/// <summary>
/// The node's <see cref="MemoryFacts"/>, read again only when the last reading is older than <see cref="MaxAge"/>:
/// admission asks for every task (under the scheduler's lock), and neither MemAvailable nor a 10-second pressure
/// average moves meaningfully faster, while reading both files costs more than the rest of admitting a task.
/// </summary>
internal sealed class MemoryWatch(TimeProvider time, Func<MemoryFacts> read)
{
    /// <summary>How old a reading may be.</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromMilliseconds(100);

    private readonly Lock _lock = new();
    private MemoryFacts _facts;
    private long _readAt;
    private bool _read;

    /// <summary>The facts, at most <see cref="MaxAge"/> old.</summary>
    public MemoryFacts Current
    {
        get
        {
            lock (_lock)
            {
                long now = time.GetTimestamp();
                if (!_read || time.GetElapsedTime(_readAt, now) >= MaxAge)
                {
                    _facts = read();
                    _readAt = now;
                    _read = true;
                }

                return _facts;
            }
        }
    }
}

/// <summary>
/// Whether a task may start as far as memory goes: a pure function of numbers. A task with a memory limit starts only
/// if that limit fits both what is available now and what is left of the node once every running task's limit is
/// counted (limits are what tasks may come to use); no task starts while memory pressure is above the threshold.
/// Queueing beats an OOM that kills a neighbour.
/// </summary>
internal static class MemoryGate
{
    /// <summary><c>null</c> when it may start; otherwise why not, for the record's <c>queueReason</c>.</summary>
    public static string? Check(long? limitBytes, long committedBytes, MemoryFacts facts, LimitOptions options)
    {
        if (facts.Pressure is { } pressure && pressure > options.MaxMemoryPressure)
            return $"memory pressure {pressure:0.#}% is above Corral:Limits:MaxMemoryPressure ({options.MaxMemoryPressure:0.#}%)";
        if (limitBytes is not { } limit)
            return null;
        long reserve = Math.Max(0, options.MemoryReserveMb) << 20;
        long node = options.NodeMemoryMb is { } mb ? mb << 20 : facts.TotalBytes;
        long left = node - reserve - committedBytes;
        if (limit > left)
            return $"its memory limit of {limit >> 20} MiB does not fit: the node gives tasks {Math.Max(0, node - reserve) >> 20} MiB and running tasks' limits hold {committedBytes >> 20} MiB";
        if (options.NodeMemoryMb is null && limit > facts.AvailableBytes - reserve)
            return $"its memory limit of {limit >> 20} MiB is more than is available now ({Math.Max(0, facts.AvailableBytes - reserve) >> 20} MiB after the reserve)";
        return null;
    }

    /// <summary>
    /// The largest memory limit a task may have to start now (what a node of a fleet claims up to): 0 still admits tasks
    /// without a limit; <c>null</c> when no task may start (memory pressure). The same rule as <see cref="Check"/>.
    /// </summary>
    public static long? Room(long committedBytes, MemoryFacts facts, LimitOptions options)
    {
        if (facts.Pressure is { } pressure && pressure > options.MaxMemoryPressure)
            return null;
        long reserve = Math.Max(0, options.MemoryReserveMb) << 20;
        long node = options.NodeMemoryMb is { } mb ? mb << 20 : facts.TotalBytes;
        long room = node - reserve - committedBytes;
        if (options.NodeMemoryMb is null)
            room = Math.Min(room, facts.AvailableBytes - reserve);
        return Math.Max(0, room);
    }
}
