using System.Diagnostics;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Teardown;

namespace Corral.Processes.Internal.Containment;

/// <summary>The operations teardown needs, whatever holds the tree together.</summary>
internal abstract class TreeContainment
{
    public abstract ContainmentKind Kind { get; }

    public virtual string? CgroupPath => null;

    /// <summary>
    /// Sends <paramref name="signal"/> to every live process of the tree (and SIGCONT, so stopped ones can act on it),
    /// recording each in <paramref name="log"/> first. Asynchronous because session mode may share its scan with
    /// other trees' (see <see cref="SharedScan"/>).
    /// </summary>
    public abstract Task SignalAllAsync(int signal, KillLog log);

    /// <summary>SIGKILLs every live process of the tree.</summary>
    public abstract Task KillAllAsync(KillLog log);

    public abstract bool IsEmpty();

    /// <summary>Waits until no process of the tree is alive; <c>false</c> if the timeout passed first.</summary>
    public abstract Task<bool> WaitEmptyAsync(TimeSpan timeout);

    /// <summary>The tree's live processes right now (the ledger), with how each was found.</summary>
    public abstract List<(int Pid, FoundBy FoundBy)> ListMembers();

    /// <summary>Releases what containment created (the leaf cgroup), once the tree is empty.</summary>
    public virtual void Release() { }

    /// <summary>The child has exited (its pidfd said so): scans may pass over its zombie, which is no member.</summary>
    public virtual void ChildExited(int pid) { }

    /// <summary>For a detached tree: releases what containment created whenever the tree's last process exits.</summary>
    public virtual void ReleaseWhenEmpty() { }

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

/// <summary>
/// A leaf cgroup: membership is exact and escape-proof for an unprivileged tree; SIGKILL is cgroup.kill. With an
/// exclusive uid (<see cref="ProcessUser.Exclusive"/>), <paramref name="outside"/> also finds the processes of that
/// uid that are not in the leaf (they got out of it), as a session-mode scan does.
/// </summary>
/// <param name="leaf">The tree's leaf.</param>
/// <param name="outside">
/// Criteria-based membership for what is outside the leaf (its criteria exclude the leaf itself), or <c>null</c>.
/// Consulted for emptiness only once the leaf is empty: while the leaf is populated, new escapees can still come
/// out of it, and the scan's "no member now, so none ever" conclusion would not hold.
/// </param>
internal sealed class CgroupTree(CgroupLeaf leaf, SessionTree? outside = null) : TreeContainment
{
    public override ContainmentKind Kind => ContainmentKind.Cgroup;

    public override string? CgroupPath => leaf.Path;

    public CgroupLeaf Leaf => leaf;

    public override Task SignalAllAsync(int signal, KillLog log)
    {
        SignalAll(signal, log);
        return outside?.SignalAllAsync(signal, log) ?? Task.CompletedTask;
    }

    private void SignalAll(int signal, KillLog log)
    {
        // Everything that needs the processes alive comes first, the signals last in one burst: once the first
        // processes start exiting they compete with this thread for the CPUs, so work left between signals ends up
        // serialised with their exit work. Per process: open a pidfd and record it (its command line is gone once it
        // exits). Then the leaf is listed once more: a process still listed after its pidfd was opened is the member
        // we listed (a recycled PID would have to be in the leaf, i.e. in the tree, and a pidfd never follows a PID
        // to a new process). Then the signal and SIGCONT through each pidfd.
        var pids = leaf.ReadProcs();
        var opened = new List<(int Pid, int Pidfd)>(pids.Count);
        try
        {
            foreach (int pid in pids)
            {
                int pidfd = Libc.pidfd_open(pid);
                if (pidfd < 0)
                    continue;
                opened.Add((pid, pidfd));
                log.Record(pid, FoundBy.Cgroup);
            }

            var still = leaf.ReadProcs().ToHashSet();
            foreach (var (pid, pidfd) in opened)
            {
                if (!still.Contains(pid))
                    continue;
                Libc.pidfd_send_signal(pidfd, signal);
                Libc.pidfd_send_signal(pidfd, Libc.SIGCONT);
            }
        }
        finally
        {
            foreach (var (_, pidfd) in opened)
                Libc.close(pidfd);
        }
    }

    public override Task KillAllAsync(KillLog log)
    {
        foreach (int pid in leaf.ReadProcs())
            log.Record(pid, FoundBy.Cgroup);
        leaf.Kill();
        return outside?.KillAllAsync(log) ?? Task.CompletedTask;
    }

    public override bool IsEmpty() => !leaf.IsPopulated() && outside?.IsEmpty() != false;

    public override void ChildExited(int pid) => outside?.ChildExited(pid);

    public override async Task<bool> WaitEmptyAsync(TimeSpan timeout)
    {
        long start = Stopwatch.GetTimestamp();
        if (!await leaf.WaitEmptyAsync(timeout).ConfigureAwait(false))
            return false;
        if (outside is null)
            return true;
        var left = timeout - Stopwatch.GetElapsedTime(start);
        return await outside.WaitEmptyAsync(left > TimeSpan.Zero ? left : TimeSpan.Zero).ConfigureAwait(false);
    }

    public override List<(int Pid, FoundBy FoundBy)> ListMembers()
    {
        var members = leaf.ReadProcs().ConvertAll(pid => (pid, FoundBy.Cgroup));
        if (outside is not null)
        {
            var inLeaf = members.Select(m => m.pid).ToHashSet();
            members.AddRange(outside.ListMembers().Where(m => !inLeaf.Contains(m.Pid)));
        }

        return members;
    }

    public override void Release()
    {
        outside?.Release();
        if (!leaf.IsPopulated())
            leaf.TryRemove();
    }

    public override void ReleaseWhenEmpty() => leaf.RemoveWhenEmpty();
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
    private readonly ExitedPids _exited = new();
    private long _lastScanTicks;
    private List<Member>? _signalled;
    private volatile bool _empty;

    public override ContainmentKind Kind => ContainmentKind.Session;

    public TreeCriteria Criteria => criteria;

    private bool CheckHolders => pipesClosed?.Invoke() != true;

    public override void ChildExited(int pid) => _exited.AddRange([pid]);

    private async Task<List<Member>> ScanAsync(KillLog? log = null)
    {
        long start = Stopwatch.GetTimestamp();
        var members = await SharedScan.FindMembersAsync(criteria, _protected, CheckHolders, log, _exited).ConfigureAwait(false);
        _lastScanTicks = Stopwatch.GetTimestamp() - start;
        return members;
    }

    public override async Task SignalAllAsync(int signal, KillLog log)
    {
        if (_empty)
            return;

        // The scan records each member as it matches and returns it with a pidfd opened before the check, so the
        // check it passed is the verification the signal needs (see ProcScanner.FindMembers): no second pass over
        // /proc between finding the members and signalling them, and the signals go out in one burst.
        var members = await ScanAsync(log).ConfigureAwait(false);
        bool handed = false;
        try
        {
            // The group id is the child's PID, reserved by its zombie, so this reaches only our group (including
            // members forked since the scan). Every member also gets the signal through its own pidfd: one found in
            // the group may have left it since (a `setsid` in progress), and would otherwise wait out the whole grace.
            if (criteria.SessionId is > 1 and var group)
                Libc.kill(-group, signal);
            foreach (var m in members)
            {
                Libc.pidfd_send_signal(m.Pidfd, signal);
                if (signal != Libc.SIGKILL)
                    Libc.pidfd_send_signal(m.Pidfd, Libc.SIGCONT);
            }

            if (signal != Libc.SIGKILL && criteria.SessionId is > 1 and var g)
                Libc.kill(-g, Libc.SIGCONT);

            // The next wait starts from these processes and their pidfds instead of another scan (it owns them now).
            if (Interlocked.Exchange(ref _signalled, members) is { } unused)
                ProcScanner.Close(unused);
            handed = true;
        }
        finally
        {
            if (!handed)
                ProcScanner.Close(members);
        }
    }

    public override Task KillAllAsync(KillLog log) => SignalAllAsync(Libc.SIGKILL, log);

    /// <remarks>
    /// Once a scan has found no member, the answer stays "empty" without scanning again: every criterion is
    /// inherited from a member (fork keeps the session, the group, the environment and the descriptors; setpgid
    /// can only join a group of one's own session; the pipes' write ends exist only in holders), so with no member
    /// left none can appear, short of an outsider deliberately copying the tree's identity.
    /// </remarks>
    public override bool IsEmpty()
    {
        if (_empty)
            return true;
        long start = Stopwatch.GetTimestamp();
        bool empty = ProcScanner.FindMembers(criteria, _protected, CheckHolders, stopAtFirst: true, log: null, _exited).Count == 0;
        _lastScanTicks = Stopwatch.GetTimestamp() - start;
        return _empty = empty;
    }

    public override async Task<bool> WaitEmptyAsync(TimeSpan timeout)
    {
        var signalled = Interlocked.Exchange(ref _signalled, null);
        if (timeout <= TimeSpan.Zero || _empty)
        {
            if (signalled is not null)
                ProcScanner.Close(signalled);
            return IsEmpty();
        }

        // Membership spans unrelated processes found by scanning. Between scans, wait for the members last seen
        // (those just signalled, at first) to exit through their pidfds, for as long as they keep exiting and then at
        // most a back-off: membership can also end without an exit (a holder closes the pipe), and new members can
        // appear. The back-off grows with the cost of a scan, so waiting on a stubborn process never becomes a busy
        // /proc loop on a crowded machine; a big tree that is exiting is never rescanned halfway through.
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        var backoff = TimeSpan.FromMilliseconds(5);
        var waitFor = signalled?.ConvertAll(m => m.Pid);
        var watch = signalled is null ? null : Io.ExitWatch.Adopt(signalled.Where(m => m.Pidfd >= 0).Select(m => m.Pidfd).ToList());
        try
        {
            while (true)
            {
                if (waitFor is { Count: > 0 })
                {
                    watch ??= Io.ExitWatch.For(waitFor);
                    if (await WaitExitedAsync(watch, backoff, deadline).ConfigureAwait(false))
                        _exited.AddRange(waitFor);
                    var cap = TimeSpan.FromMilliseconds(Math.Max(50, 4 * _lastScanTicks * 1000.0 / Stopwatch.Frequency));
                    backoff = backoff * 2 < cap ? backoff * 2 : cap;
                }

                watch?.Dispose();
                watch = null;
                var members = await ScanAsync().ConfigureAwait(false);
                if (members.Count == 0)
                    return _empty = true;
                if (Left(deadline) <= TimeSpan.Zero)
                    return false;
                waitFor = members.ConvertAll(m => m.Pid);
            }
        }
        finally
        {
            watch?.Dispose();
        }
    }

    private static TimeSpan Left(long deadline) =>
        TimeSpan.FromSeconds(Math.Max(0, (double)(deadline - Stopwatch.GetTimestamp()) / Stopwatch.Frequency));

    /// <summary>
    /// Waits until every process <paramref name="watch"/> watches has exited (<c>true</c>), or until none has exited for
    /// <paramref name="quiet"/>, or <paramref name="deadline"/> (<c>false</c>).
    /// </summary>
    private static async Task<bool> WaitExitedAsync(Io.ExitWatch watch, TimeSpan quiet, long deadline)
    {
        int remaining = watch.Remaining;
        while (true)
        {
            var left = Left(deadline);
            var step = quiet < left ? quiet : left;
            if (step <= TimeSpan.Zero)
                return watch.AllExited.IsCompleted;
            using var cts = new CancellationTokenSource();
            var all = watch.AllExited;
            var first = await Task.WhenAny(all, Task.Delay(step, cts.Token)).ConfigureAwait(false);
            cts.Cancel();
            if (first == all)
                return true;
            int now = watch.Remaining;
            if (now == remaining)
                return false;
            remaining = now;
        }
    }

    public override List<(int Pid, FoundBy FoundBy)> ListMembers() =>
        _empty ? [] : ProcScanner.FindMembers(criteria, _protected, CheckHolders);

    /// <summary>Closes the pidfds of a signal that no wait took over.</summary>
    public override void Release()
    {
        if (Interlocked.Exchange(ref _signalled, null) is { } unused)
            ProcScanner.Close(unused);
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
