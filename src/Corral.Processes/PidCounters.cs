using System.Diagnostics;
using Corral.Processes.Internal.Io;

namespace Corral.Processes;

/// <summary>
/// The kernel's PID allocation counters at one moment: the last PID handed out, the tasks (threads) that exist, the
/// tasks created since boot and <c>pid_max</c>. Two samples tell whether allocation may have gone round between them,
/// which bounds the PIDs of the processes created in between.
/// </summary>
/// <param name="LastPid">The last PID handed out in this PID namespace (<c>/proc/loadavg</c>).</param>
/// <param name="Tasks">The tasks that exist (<c>/proc/loadavg</c>).</param>
/// <param name="Forks">The tasks created since boot (<c>processes</c> in <c>/proc/stat</c>).</param>
/// <param name="MaxPid">PIDs are below this (<c>/proc/sys/kernel/pid_max</c>).</param>
/// <remarks>
/// The kernel hands PIDs out in cyclic order and skips those in use. A PID stays in use while a task has it as its
/// PID, thread group, process group or session, so at most three per task. Going all the way round therefore takes
/// at least <c>pid_max - 300 - 3 × tasks</c> creations, where the tasks are at most those seen before plus those
/// created since, and every creation counts in <c>processes</c>. Only PIDs chosen explicitly (clone3
/// <c>set_tid</c> or a write to <c>ns_last_pid</c>: privileged, for checkpoint/restore) escape this.
/// </remarks>
public sealed record PidCounters(int LastPid, int Tasks, long Forks, int MaxPid)
{
    /// <summary>PIDs below this are never handed out again once allocation has wrapped (the kernel's RESERVED_PIDS).</summary>
    private const int ReservedPids = 300;

    private static readonly long s_maxAge = Stopwatch.Frequency;
    private static (PidCounters? Counters, long At) s_recent;
    private static bool s_unavailable;

    /// <summary>The counters now, or <c>null</c> where <c>/proc</c> does not give them.</summary>
    public static PidCounters? Read()
    {
        byte[] buffer = new byte[8192];
        int n = Fd.ReadFile("/proc/stat", ref buffer, 1 << 20);
        if (n <= 0 || !TryField(buffer.AsSpan(0, n), "\nprocesses "u8, out long forks))
            return null;
        n = Fd.ReadFile("/proc/loadavg", ref buffer);
        if (n <= 0)
            return null;

        // "0.00 0.01 0.05 1/123 4567": running/total tasks, then the last PID.
        var text = buffer.AsSpan(0, n);
        int slash = text.IndexOf((byte)'/');
        if (slash < 0 || !TryNumber(text[(slash + 1)..], out long tasks, out int used)
            || !TryNumber(text[(slash + 1 + used)..].TrimStart((byte)' '), out long last, out _))
            return null;
        int maxPid = ProcFs.MaxPid();
        return maxPid <= 0 ? null : new PidCounters((int)Math.Min(last, int.MaxValue), (int)Math.Min(tasks, int.MaxValue), forks, maxPid);
    }

    /// <summary>
    /// Whether allocation may have gone all the way round since <paramref name="before"/>, so that a PID in use then
    /// and freed since may have been handed out again. A pure function of the numbers.
    /// </summary>
    public bool MayHaveGoneRoundSince(PidCounters before)
    {
        if (MaxPid <= ReservedPids)
            return true;
        long created = Forks - before.Forks;
        return created < 0 || 4 * created + 3L * before.Tasks >= MaxPid - ReservedPids;
    }

    /// <summary>
    /// Whether allocation may have passed <c>pid_max</c> and started again from the bottom since
    /// <paramref name="before"/>. If it has not, every PID handed out meanwhile is in
    /// (<c>before.LastPid</c>, <see cref="LastPid"/>]. A pure function of the numbers.
    /// </summary>
    public bool MayHaveWrappedSince(PidCounters before) => LastPid < before.LastPid || MayHaveGoneRoundSince(before);

    /// <summary>
    /// A sample at most a second old. An older sample is as good as a new one to compare a later one with: it only
    /// counts more creations, and the tasks it saw plus those creations still bound the tasks that existed later.
    /// Its <see cref="LastPid"/> is not current.
    /// </summary>
    internal static PidCounters? Recent()
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

    private static bool TryField(ReadOnlySpan<byte> text, ReadOnlySpan<byte> key, out long value)
    {
        int at = text.IndexOf(key);
        value = 0;
        return at >= 0 && TryNumber(text[(at + key.Length)..], out value, out _);
    }

    private static bool TryNumber(ReadOnlySpan<byte> text, out long value, out int used)
    {
        value = 0;
        used = 0;
        while (used < text.Length && (uint)(text[used] - '0') <= 9)
            value = value * 10 + (text[used++] - '0');
        return used > 0;
    }
}
