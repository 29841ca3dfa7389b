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
/// since the child, which <see cref="PidCounters.MayHaveGoneRoundSince"/> rules out.
/// </remarks>
internal sealed class PidWindow
{
    private readonly int _child;
    private readonly PidCounters _before;

    private PidWindow(int child, PidCounters before)
    {
        _child = child;
        _before = before;
    }

    /// <summary>
    /// Counters to give <see cref="After"/>; take them before creating the child. <c>null</c> where /proc does not
    /// provide them (scans then look at every process).
    /// </summary>
    public static PidCounters? CountersBeforeSpawn() => PidCounters.Recent();

    /// <summary>The window for <paramref name="child"/>, created after <paramref name="before"/> was sampled.</summary>
    public static PidWindow? After(int child, PidCounters? before) => before is null ? null : new PidWindow(child, before);

    /// <summary>Where the tree's processes (the child included) can be right now.</summary>
    public PidSpan Now()
    {
        int last = ProcFs.LastPid();
        if (last <= 0)
            return PidSpan.Everything;
        if (last == _child)
            return new PidSpan(_child, _child, 0);
        if (PidCounters.Read() is not { } now || now.MayHaveGoneRoundSince(_before))
            return PidSpan.Everything;
        return new PidSpan(_child, last, now.MaxPid);
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
