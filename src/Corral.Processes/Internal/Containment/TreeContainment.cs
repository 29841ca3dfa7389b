using Corral.Processes.Interop;
using Corral.Processes.Internal.Teardown;

namespace Corral.Processes.Internal.Containment;

/// <summary>The operations teardown needs, whatever holds the tree together.</summary>
internal abstract class TreeContainment
{
    public abstract ContainmentKind Kind { get; }

    public virtual string? CgroupPath => null;

    /// <summary>Sends <paramref name="signal"/> to every live process of the tree (and SIGCONT, so stopped ones can act on it).</summary>
    public abstract void SignalAll(int signal, KillLog log);

    /// <summary>SIGKILLs every live process of the tree.</summary>
    public abstract void KillAll(KillLog log);

    public abstract bool IsEmpty();

    /// <summary>Waits until no process of the tree is alive; <c>false</c> if the timeout passed first.</summary>
    public abstract Task<bool> WaitEmptyAsync(TimeSpan timeout);

    /// <summary>Releases what containment created (the leaf cgroup), once the tree is empty.</summary>
    public virtual void Release() { }

    /// <summary>Signals <paramref name="pid"/> through a pidfd, but only if it still belongs to the tree once the pidfd is open.</summary>
    protected static bool SignalVerified(int pid, int signal, Func<int, bool> stillMember)
    {
        int pidfd = Libc.pidfd_open(pid);
        if (pidfd < 0)
            return false;
        try
        {
            // Checked after opening: if the PID had been recycled, the newcomer fails this test; if it is recycled
            // later, the pidfd still names the process we checked and the signal goes nowhere.
            return stillMember(pid) && Libc.pidfd_send_signal(pidfd, signal) == 0;
        }
        finally
        {
            Libc.close(pidfd);
        }
    }
}

/// <summary>A leaf cgroup: membership is exact and escape-proof; SIGKILL is cgroup.kill.</summary>
internal sealed class CgroupTree(CgroupLeaf leaf) : TreeContainment
{
    public override ContainmentKind Kind => ContainmentKind.Cgroup;

    public override string? CgroupPath => leaf.Path;

    public CgroupLeaf Leaf => leaf;

    public override void SignalAll(int signal, KillLog log)
    {
        var pids = leaf.ReadProcs();
        foreach (int pid in pids)
        {
            log.Record(pid, FoundBy.Cgroup);
            SignalVerified(pid, signal, InLeaf);
        }

        foreach (int pid in pids)
            SignalVerified(pid, Libc.SIGCONT, InLeaf);
    }

    public override void KillAll(KillLog log)
    {
        foreach (int pid in leaf.ReadProcs())
            log.Record(pid, FoundBy.Cgroup);
        leaf.Kill();
    }

    public override bool IsEmpty() => !leaf.IsPopulated();

    public override Task<bool> WaitEmptyAsync(TimeSpan timeout) => leaf.WaitEmptyAsync(timeout);

    public override void Release()
    {
        if (!leaf.IsPopulated())
            leaf.TryRemove();
    }

    private bool InLeaf(int pid) => ProcScanner.CgroupOf(pid) == leaf.RelativePath;
}

/// <summary>
/// The fallback: the child's session and process group, plus processes that left them but hold the write end of
/// the tree's pipes or carry its environment tag. Safe only while the child is an unreaped zombie (see <see cref="ChildProcess"/>).
/// </summary>
internal sealed class SessionTree(TreeCriteria criteria) : TreeContainment
{
    private readonly HashSet<int> _protected = ProcScanner.ProtectedPids();

    public override ContainmentKind Kind => ContainmentKind.Session;

    public TreeCriteria Criteria => criteria;

    public override void SignalAll(int signal, KillLog log)
    {
        var members = ProcScanner.FindMembers(criteria, _protected);
        foreach (var (pid, foundBy) in members)
            log.Record(pid, foundBy);

        // The group id is the child's PID, reserved by its zombie, so this reaches only our group.
        if (criteria.SessionId is > 1 and var group)
            Libc.kill(-group, signal);
        foreach (var (pid, _) in members)
            SignalVerified(pid, signal, IsMember);
        if (signal != Libc.SIGKILL)
        {
            if (criteria.SessionId is > 1 and var g)
                Libc.kill(-g, Libc.SIGCONT);
            foreach (var (pid, _) in members)
                SignalVerified(pid, Libc.SIGCONT, IsMember);
        }
    }

    public override void KillAll(KillLog log) => SignalAll(Libc.SIGKILL, log);

    public override bool IsEmpty() => ProcScanner.FindMembers(criteria, _protected).Count == 0;

    public override async Task<bool> WaitEmptyAsync(TimeSpan timeout)
    {
        // Membership spans unrelated processes found by scanning; re-scan with a short back-off.
        var deadline = DateTime.UtcNow + timeout;
        var delay = TimeSpan.FromMilliseconds(1);
        while (true)
        {
            if (IsEmpty())
                return true;
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
                return false;
            await Task.Delay(delay < left ? delay : left).ConfigureAwait(false);
            delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 50));
        }
    }

    /// <summary>Signal 0 through the verified path; used by tests to prove the re-check.</summary>
    internal bool SignalIfMember(int pid) => SignalVerified(pid, 0, IsMember);

    private bool IsMember(int pid)
    {
        if (_protected.Contains(pid))
            return false;
        byte[] buffer = new byte[4096];
        return ProcScanner.Match(pid, criteria, ref buffer) is not null;
    }
}
