using System.Diagnostics;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>
/// The PIDs the kernel has handed out since a tree's child was created. Every descendant of the child was created
/// after it, so it has one of them: a session-mode scan only needs to look at these and the child, and while the
/// child's PID is still the last one handed out, the child has no descendants at all and is all there is to check.
/// </summary>
/// <remarks>
/// The kernel hands PIDs out in cyclic order (ns_last_pid is the last one) and cannot hand out the child's PID again
/// while its zombie is unreaped, so the window (child, last] is exact unless allocation has gone all the way round
/// since the child. That is ruled out with the kernel's counters: going round takes at least
/// pid_max - 300 - (PIDs in use) allocations, PIDs in use are at most the tasks counted before the child plus
/// those created since, and every creation counts in /proc/stat "processes". Only PIDs chosen explicitly
/// (clone3 set_tid, or a write to ns_last_pid: privileged, for checkpoint/restore) can fall outside the window.
/// </remarks>
internal sealed class PidWindow
{
    /// <summary>PIDs below this are never handed out again once allocation has wrapped (RESERVED_PIDS).</summary>
    private const int ReservedPids = 300;

    private readonly int _child;
    private readonly KernelCounters _before;

    private PidWindow(int child, KernelCounters before)
    {
        _child = child;
        _before = before;
    }

    /// <summary>
    /// Counters to give <see cref="After"/>; take them before creating the child. <c>null</c> where /proc does not
    /// provide them (scans then look at every process).
    /// </summary>
    public static KernelCounters? CountersBeforeSpawn() => KernelCounters.Recent();

    /// <summary>The window for <paramref name="child"/>, created after <paramref name="before"/> was sampled.</summary>
    public static PidWindow? After(int child, KernelCounters? before) => before is null ? null : new PidWindow(child, before);

    /// <summary>Where the tree's processes (the child included) can be right now.</summary>
    public PidSpan Now()
    {
        int last = ProcFs.LastPid();
        if (last <= 0)
            return PidSpan.Everything;
        if (last == _child)
            return new PidSpan(_child, _child, 0);
        int maxPid = ProcFs.MaxPid();
        if (KernelCounters.Read() is not { } now || MayHaveWrapped(_before, now, maxPid))
            return PidSpan.Everything;
        return new PidSpan(_child, last, maxPid);
    }

    /// <summary>
    /// Whether PID allocation may have gone all the way round between two samples of the counters: going round takes
    /// at least pid_max - 300 - (PIDs in use) allocations, and PIDs in use are at most the tasks seen before plus
    /// those created since. A pure function of the numbers.
    /// </summary>
    public static bool MayHaveWrapped(KernelCounters before, KernelCounters now, int maxPid)
    {
        if (maxPid <= ReservedPids)
            return true;
        long created = now.Forks - before.Forks;
        return created < 0 || 2 * created + before.Tasks >= maxPid - ReservedPids;
    }
}

/// <summary>
/// The PIDs a scan must consider: all of them, or those from <see cref="First"/> to <see cref="Last"/> in the
/// kernel's cyclic allocation order (so the span may wrap past pid_max).
/// </summary>
internal readonly record struct PidSpan(int First, int Last, int MaxPid, bool All = false)
{
    public static PidSpan Everything => new(0, 0, 0, All: true);

    /// <summary>How many PIDs the span covers.</summary>
    public int Count => All ? int.MaxValue : Last >= First ? Last - First + 1 : MaxPid - First + Last;

    public bool Contains(int pid) => All || (Last >= First ? pid >= First && pid <= Last : pid >= First || pid <= Last);

    /// <summary>The span's PIDs, newest first (nothing for <see cref="Everything"/>: list /proc instead).</summary>
    public IEnumerable<int> NewestFirst()
    {
        if (All)
            yield break;
        for (int pid = Last; ; pid = pid <= 1 ? MaxPid - 1 : pid - 1)
        {
            yield return pid;
            if (pid == First)
                yield break;
        }
    }
}

/// <summary>The host's task counters: tasks created since boot, and tasks that exist.</summary>
internal sealed record KernelCounters(long Forks, int Tasks)
{
    private static readonly long s_maxAge = Stopwatch.Frequency;
    private static (KernelCounters? Counters, long At) s_recent;
    private static bool s_unavailable;

    /// <summary>
    /// A sample at most a second old. An older sample is as good for <see cref="PidWindow"/>: it only counts more
    /// creations, and the tasks it saw plus those creations still bound the tasks that existed later.
    /// </summary>
    public static KernelCounters? Recent()
    {
        if (s_unavailable)
            return null;
        var (counters, at) = s_recent;
        long now = Stopwatch.GetTimestamp();
        if (counters is not null && now - at < s_maxAge)
            return counters;
        counters = Read();
        if (counters is null)
            s_unavailable = true;
        else
            s_recent = (counters, now);
        return counters;
    }

    public static KernelCounters? Read()
    {
        byte[] buffer = new byte[8192];
        int n = Fd.ReadFile("/proc/stat", ref buffer, 1 << 20);
        if (n <= 0 || !TryField(buffer.AsSpan(0, n), "\nprocesses "u8, out long forks))
            return null;
        n = Fd.ReadFile("/proc/loadavg", ref buffer);
        if (n <= 0)
            return null;

        // "0.00 0.01 0.05 1/123 4567": running/total tasks.
        var text = buffer.AsSpan(0, n);
        int slash = text.IndexOf((byte)'/');
        if (slash < 0 || !TryNumber(text[(slash + 1)..], out long tasks))
            return null;
        return new KernelCounters(forks, (int)Math.Min(tasks, int.MaxValue));
    }

    private static bool TryField(ReadOnlySpan<byte> text, ReadOnlySpan<byte> key, out long value)
    {
        int at = text.IndexOf(key);
        value = 0;
        return at >= 0 && TryNumber(text[(at + key.Length)..], out value);
    }

    private static bool TryNumber(ReadOnlySpan<byte> text, out long value)
    {
        value = 0;
        int i = 0;
        while (i < text.Length && (uint)(text[i] - '0') <= 9)
            value = value * 10 + (text[i++] - '0');
        return i > 0;
    }
}
