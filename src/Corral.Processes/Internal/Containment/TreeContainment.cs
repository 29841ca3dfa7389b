using System.Diagnostics;
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
        // In batches, so the first processes are already on their way out (the kernel's exit work runs on the
        // other CPU) while the next command lines are read. Per batch: record each process (its command line must
        // be read before it dies) and open a pidfd for it, then list the leaf again: a process still listed after
        // its pidfd was opened is the member we checked (a recycled PID would have to be in the leaf, i.e. in the
        // tree, and a pidfd never follows a PID to a new process). Then the signal and SIGCONT through the pidfd.
        const int batchSize = 64;
        var pids = leaf.ReadProcs();
        var batch = new List<(int Pid, int Pidfd)>(Math.Min(batchSize, pids.Count));
        for (int start = 0; start < pids.Count; start += batchSize)
        {
            try
            {
                for (int i = start; i < Math.Min(start + batchSize, pids.Count); i++)
                {
                    log.Record(pids[i], FoundBy.Cgroup);
                    int pidfd = Libc.pidfd_open(pids[i]);
                    if (pidfd >= 0)
                        batch.Add((pids[i], pidfd));
                }

                var still = leaf.ReadProcs().ToHashSet();
                foreach (var (pid, pidfd) in batch)
                {
                    if (!still.Contains(pid))
                        continue;
                    Libc.pidfd_send_signal(pidfd, signal);
                    Libc.pidfd_send_signal(pidfd, Libc.SIGCONT);
                }
            }
            finally
            {
                foreach (var (_, pidfd) in batch)
                    Libc.close(pidfd);
                batch.Clear();
            }
        }
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
/// <param name="criteria">What identifies the tree's processes.</param>
/// <param name="pipesClosed">
/// Whether both of the tree's pipes have reached EOF. Once they have, no process can hold a write end, and the
/// scans skip the per-descriptor check (the most expensive part) without changing what they find.
/// </param>
internal sealed class SessionTree(TreeCriteria criteria, Func<bool>? pipesClosed = null) : TreeContainment
{
    private readonly Lazy<HashSet<int>> _protected = new(ProcScanner.ProtectedPids);
    private long _lastScanTicks;
    private List<(int Pid, FoundBy FoundBy)>? _signalled;

    public override ContainmentKind Kind => ContainmentKind.Session;

    public TreeCriteria Criteria => criteria;

    private bool CheckHolders => pipesClosed?.Invoke() != true;

    private List<(int Pid, FoundBy FoundBy)> Scan(bool stopAtFirst = false)
    {
        long start = Stopwatch.GetTimestamp();
        var members = ProcScanner.FindMembers(criteria, _protected, CheckHolders, stopAtFirst);
        _lastScanTicks = Stopwatch.GetTimestamp() - start;
        return members;
    }

    public override void SignalAll(int signal, KillLog log)
    {
        var members = Scan();
        foreach (var (pid, foundBy) in members)
            log.Record(pid, foundBy);

        // The group id is the child's PID, reserved by its zombie, so this reaches only our group.
        if (criteria.SessionId is > 1 and var group)
            Libc.kill(-group, signal);

        // One pidfd per member, membership re-checked once it is open; the signal and SIGCONT both go through it.
        byte[] buffer = new byte[4096];
        foreach (var (pid, _) in members)
        {
            int pidfd = Libc.pidfd_open(pid);
            if (pidfd < 0)
                continue;
            try
            {
                if (!IsMember(pid, ref buffer))
                    continue;
                Libc.pidfd_send_signal(pidfd, signal);
                if (signal != Libc.SIGKILL)
                    Libc.pidfd_send_signal(pidfd, Libc.SIGCONT);
            }
            finally
            {
                Libc.close(pidfd);
            }
        }

        if (signal != Libc.SIGKILL && criteria.SessionId is > 1 and var g)
            Libc.kill(-g, Libc.SIGCONT);

        // The next wait starts from these pidfds instead of another scan.
        Volatile.Write(ref _signalled, members);
    }

    public override void KillAll(KillLog log) => SignalAll(Libc.SIGKILL, log);

    public override bool IsEmpty() => Scan(stopAtFirst: true).Count == 0;

    public override async Task<bool> WaitEmptyAsync(TimeSpan timeout)
    {
        if (timeout <= TimeSpan.Zero)
            return IsEmpty();

        // Membership spans unrelated processes found by scanning. Between scans, wait for the members last seen
        // (those just signalled, at first) to exit through their pidfds, bounded by a back-off: membership can also
        // end without an exit (a holder closes the pipe), and new members can appear. The back-off grows with the
        // cost of a scan, so waiting on a stubborn process never becomes a busy /proc loop on a crowded machine.
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var backoff = TimeSpan.FromMilliseconds(5);
        var waitFor = Interlocked.Exchange(ref _signalled, null);
        while (true)
        {
            if (waitFor is { Count: > 0 })
            {
                var left = Left(deadline);
                await WaitExitedAsync(waitFor, backoff < left ? backoff : left).ConfigureAwait(false);
                var cap = TimeSpan.FromMilliseconds(Math.Max(50, 4 * _lastScanTicks * 1000.0 / Stopwatch.Frequency));
                backoff = backoff * 2 < cap ? backoff * 2 : cap;
            }

            var members = Scan();
            if (members.Count == 0)
                return true;
            if (Left(deadline) <= TimeSpan.Zero)
                return false;
            waitFor = members;
        }
    }

    private static TimeSpan Left(long deadline) =>
        TimeSpan.FromSeconds(Math.Max(0, (double)(deadline - Stopwatch.GetTimestamp()) / Stopwatch.Frequency));

    /// <summary>Completes when every process in <paramref name="members"/> has exited, or after <paramref name="timeout"/>.</summary>
    private static async Task WaitExitedAsync(List<(int Pid, FoundBy FoundBy)> members, TimeSpan timeout)
    {
        using var watch = Io.ExitWatch.For(members.Select(m => m.Pid));
        try
        {
            await watch.AllExited.WaitAsync(timeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Someone is still alive: the caller scans again.
        }
    }

    /// <summary>Signal 0 through the verified path; used by tests to prove the re-check.</summary>
    internal bool SignalIfMember(int pid) => SignalVerified(pid, 0, IsMember);

    private bool IsMember(int pid)
    {
        byte[] buffer = new byte[4096];
        return IsMember(pid, ref buffer);
    }

    private bool IsMember(int pid, ref byte[] buffer) =>
        !_protected.Value.Contains(pid) && ProcScanner.Match(pid, criteria, ref buffer) is not null;
}
