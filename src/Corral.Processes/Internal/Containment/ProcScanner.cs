using System.Buffers.Text;
using System.Globalization;
using System.Text;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;
using Corral.Processes.Internal.Teardown;

namespace Corral.Processes.Internal.Containment;

/// <summary>What identifies a tree's processes in session mode.</summary>
/// <param name="SessionId">The child's PID, which is also its session and process group id; <c>null</c> when it can no longer be trusted.</param>
/// <param name="TreeTag">The exact environment entry <c>CORRAL_TREE_ID=&lt;id&gt;</c>.</param>
/// <param name="PipeLinks">readlink text (<c>pipe:[ino]</c>) of the tree's stdout and stderr pipes.</param>
/// <param name="Window">The PIDs handed out since the child was created, when known: no member can have another.</param>
/// <param name="ExclusiveUid">A uid every process of which is the tree's (<see cref="ProcessUser.Exclusive"/>), matched after the session.</param>
/// <param name="ExcludedCgroup">
/// A cgroup (as /proc/PID/cgroup shows it) whose processes are not matched here because the cgroup itself lists
/// them: the tree's leaf, when these criteria look for what got out of it. Only used without a <paramref name="SessionId"/>.
/// </param>
internal sealed record TreeCriteria(int? SessionId, string TreeTag, IReadOnlyList<string> PipeLinks, PidWindow? Window = null,
    int? ExclusiveUid = null, string? ExcludedCgroup = null)
{
    /// <summary><see cref="TreeTag"/> as the bytes /proc/PID/environ holds.</summary>
    public byte[] TreeTagBytes { get; } = Encoding.ASCII.GetBytes(TreeTag);

    /// <summary>The cgroup v2 line of /proc/PID/cgroup for a process in <see cref="ExcludedCgroup"/>.</summary>
    public byte[]? ExcludedCgroupLine { get; } = ExcludedCgroup is null ? null : Encoding.UTF8.GetBytes("0::" + ExcludedCgroup);

    /// <summary><see cref="PipeLinks"/> as the bytes readlink returns.</summary>
    public byte[][] PipeLinkBytes { get; } = PipeLinks.Select(l => Encoding.ASCII.GetBytes(l)).ToArray();
}

/// <summary>
/// PIDs of a tree's window whose processes are known to have exited (their pidfds said so). Within a window that
/// still holds, such a PID cannot be handed out again (allocation would have to go all the way round), so later
/// scans skip it: after a big tree's teardown its zombies, possibly not yet reaped by init, cost nothing.
/// </summary>
internal sealed class ExitedPids
{
    private readonly Lock _gate = new();
    private readonly HashSet<int> _pids = [];

    public bool Contains(int pid)
    {
        lock (_gate)
            return _pids.Contains(pid);
    }

    public void AddRange(IEnumerable<int> pids)
    {
        lock (_gate)
            _pids.UnionWith(pids);
    }

    /// <summary>Forgets everything: the window no longer holds, so a PID may name a new process.</summary>
    public void Clear()
    {
        lock (_gate)
            _pids.Clear();
    }
}

/// <summary>A tree member found by a scan, with the pidfd opened before it was checked (or -1 when none was asked for).</summary>
/// <param name="Pid">The process.</param>
/// <param name="FoundBy">The first criterion it matched.</param>
/// <param name="Pidfd">Opened before the check, so it names the process that matched; -1 when none was asked for.</param>
internal readonly record struct Member(int Pid, FoundBy FoundBy, int Pidfd = -1);

/// <summary>
/// Reads /proc to find a tree's members. Every read tolerates the process vanishing mid-scan. Nothing here stats a
/// /proc/PID/fd entry (that follows the link and can block), and the per-process work allocates nothing.
/// </summary>
internal static class ProcScanner
{
    /// <summary>Ourselves, every ancestor, and PID 1: never signalled, whatever they hold.</summary>
    public static HashSet<int> ProtectedPids()
    {
        var result = new HashSet<int> { 1 };
        byte[] buffer = new byte[512];
        int pid = Environment.ProcessId;
        for (int depth = 0; pid > 1 && depth < 64 && result.Add(pid); depth++)
            pid = ReadStat(pid, ref buffer)?.ParentPid ?? 0;
        return result;
    }

    public static IEnumerable<int> AllPids() => ListPids();

    public static List<int> ListPids()
    {
        var pids = new List<int>(512);
        ProcFs.ListPids(pids);
        return pids;
    }

    /// <summary>Every live process matching the criteria, with the first criterion it matched.</summary>
    /// <param name="criteria">What identifies the tree.</param>
    /// <param name="protectedPids">Never members, whatever they hold (computed only if there is anything to scan).</param>
    /// <param name="checkHolders">
    /// <c>false</c> once no process holds a write end of the tree's pipes (EOF, or POLLHUP on the read end): the
    /// per-descriptor part of the scan would find nothing.
    /// </param>
    /// <param name="stopAtFirst">Return as soon as one member is found (for "is the tree empty?").</param>
    /// <remarks>
    /// Only the PIDs of the criteria's <see cref="PidWindow"/> are candidates: the child alone while it is the last
    /// process created, the few created since by probing them directly, otherwise a listing of /proc.
    /// Two passes over the candidates, newest PIDs first (a tree's processes are usually the most recent):
    /// the cheap criteria (session and group by getsid/getpgid, the environment tag) for every process, then the
    /// descriptor check (readlink of every fd) only for the processes the first pass did not match. The result
    /// and each member's <see cref="FoundBy"/> are the same as checking the criteria in order for each process.
    /// </remarks>
    public static List<(int Pid, FoundBy FoundBy)> FindMembers(TreeCriteria criteria, Lazy<HashSet<int>> protectedPids, bool checkHolders = true, bool stopAtFirst = false)
    {
        var members = FindMembers(criteria, protectedPids, checkHolders, stopAtFirst, log: null);
        var result = new List<(int, FoundBy)>(members.Count);
        foreach (var m in members)
            result.Add((m.Pid, m.FoundBy));
        return result;
    }

    /// <summary>
    /// Like the other overload; with a <paramref name="log"/>, for signalling: a pidfd is opened for each candidate
    /// <em>before</em> it is checked, each member is recorded in the log as soon as it matches (alive, so its
    /// command line is still there), and each member comes with its pidfd, which the caller must close.
    /// </summary>
    /// <remarks>
    /// Opening first is what makes the scan's own check the verification a signal needs: if the PID was recycled
    /// before the check, the pidfd names the old, dead process and a signal through it goes nowhere; if not, the
    /// check examined the very process the pidfd names. No second check per member is needed.
    /// </remarks>
    /// <param name="criteria">What identifies the tree.</param>
    /// <param name="protectedPids">Never members.</param>
    /// <param name="checkHolders">Whether any process may still hold a write end of the tree's pipes.</param>
    /// <param name="stopAtFirst">Return as soon as one member is found.</param>
    /// <param name="log">Where to record members (opening pidfds for them); <c>null</c> to only look.</param>
    /// <param name="exited">PIDs of the window known to have exited, skipped; cleared if the window no longer holds.</param>
    public static List<Member> FindMembers(TreeCriteria criteria, Lazy<HashSet<int>> protectedPids, bool checkHolders, bool stopAtFirst, KillLog? log, ExitedPids? exited = null)
    {
        var members = new List<Member>();
        byte[] buffer = new byte[4096];
        bool withPidfds = log is not null;
        try
        {
            // For "is it empty?" the child first: while it lives, it is the member the answer needs.
            if (stopAtFirst && criteria.SessionId is { } child
                && TryMember(child, criteria, withPidfds, log, ref buffer, members, out _))
                return members;

            var span = criteria.Window?.Now() ?? PidSpan.Everything;
            if (span.All)
                exited?.Clear();
            // The last PID handed out before the pass lists its candidates: what comes after is read in the rounds below.
            int last = span.All ? ProcFs.LastPid() : span.Last;
            if (Pass(Candidates(span), span.All, criteria, protectedPids, checkHolders, stopAtFirst, withPidfds, log, exited, ref buffer, members))
                return members;

            // A member ahead of the pass can fork a process that gets a PID the pass has already gone by (newest first,
            // the next PID is above the pass; after a wrap, anywhere) and exit before the pass reaches it. So the PIDs
            // handed out during each pass are read in another, until one during which none was: a member alive at the
            // end was then alive all through the first pass, or got one of those PIDs and was alive all through the
            // pass that read it. An empty answer is thereby a proof, not a snapshot.
            foreach (var (fresh, wrapped) in HandedOutDuringPasses(last))
            {
                // After a wrap, a PID known to have exited may be a new process's.
                if (Pass(Candidates(fresh).Where(pid => !members.Exists(m => m.Pid == pid)), all: false, criteria, protectedPids, checkHolders, stopAtFirst, withPidfds, log,
                        wrapped ? null : exited, ref buffer, members))
                    return members;
            }

            return members;
        }
        catch
        {
            Close(members);
            throw;
        }
    }

    /// <summary>
    /// The PIDs handed out after <paramref name="last"/> up to <paramref name="now"/> (both last PIDs), in cyclic order,
    /// and whether allocation wrapped past pid_max in between (it resumes low: from 1 on is a superset of where).
    /// </summary>
    internal static (PidSpan Span, bool Wrapped) HandedOut(int last, int now, int maxPid) =>
        (new PidSpan(last + 1 < maxPid ? last + 1 : 1, now, maxPid), now < last);

    /// <summary>How many passes over the PIDs handed out during the pass before, at most, a scan makes (a fork storm ends them).</summary>
    private const int MaxRounds = 64;

    /// <summary>
    /// The PIDs handed out during each pass of a scan whose first pass began after <paramref name="last"/> was the last
    /// PID: each step reads the last PID when the caller's pass over the step before is done, and the steps end with a
    /// pass during which none was handed out (or after <see cref="MaxRounds"/>).
    /// </summary>
    internal static IEnumerable<(PidSpan Span, bool Wrapped)> HandedOutDuringPasses(int last)
    {
        int maxPid = 0;
        for (int round = 0; last > 0 && round < MaxRounds; round++)
        {
            int now = ProcFs.LastPid();
            if (now == last || now <= 0)
                yield break;
            if (maxPid == 0)
                maxPid = ProcFs.MaxPid();
            yield return HandedOut(last, now, maxPid);
            last = now;
        }
    }

    /// <summary>
    /// One pass over <paramref name="candidates"/>: the cheap criteria for each, then the descriptor check for those
    /// they did not match. <c>true</c> when <paramref name="stopAtFirst"/> and a member was found.
    /// </summary>
    private static bool Pass(IEnumerable<int> candidates, bool all, TreeCriteria criteria, Lazy<HashSet<int>> protectedPids, bool checkHolders, bool stopAtFirst,
        bool withPidfds, KillLog? log, ExitedPids? exited, ref byte[] buffer, List<Member> members)
    {
        var unmatched = new List<int>();
        foreach (int pid in candidates)
        {
            // Ourselves, our ancestors and PID 1 existed before the child, so never fall in a bounded window: only
            // a scan of everything consults the protected set (a /proc read per ancestor to build).
            if ((all && protectedPids.Value.Contains(pid)) || exited?.Contains(pid) == true)
                continue;
            if (TryMember(pid, criteria, withPidfds, log, ref buffer, members, out bool mayHold))
            {
                if (stopAtFirst)
                    return true;
            }
            else if (mayHold)
            {
                unmatched.Add(pid);
            }
        }

        if (!checkHolders || criteria.PipeLinks.Count == 0)
            return false;
        var fds = new List<int>();
        foreach (int pid in unmatched)
        {
            int pidfd = withPidfds ? Libc.pidfd_open(pid) : -1;
            if (withPidfds && pidfd < 0)
                continue;
            if (HoldsWriteEnd(pid, criteria.PipeLinkBytes, ref buffer, fds))
            {
                log?.Record(pid, FoundBy.PipeHolder);
                members.Add(new Member(pid, FoundBy.PipeHolder, pidfd));
                if (stopAtFirst)
                    return true;
            }
            else if (pidfd >= 0)
            {
                Libc.close(pidfd);
            }
        }

        return false;
    }

    /// <summary>Closes the members' pidfds.</summary>
    public static void Close(List<Member> members)
    {
        foreach (var m in members)
        {
            if (m.Pidfd >= 0)
                Libc.close(m.Pidfd);
        }
    }

    /// <summary>The cheap criteria for one candidate; on a match, adds it (with its pidfd, opened first) to <paramref name="members"/>.</summary>
    private static bool TryMember(int pid, TreeCriteria criteria, bool withPidfd, KillLog? log, ref byte[] buffer, List<Member> members, out bool mayHold)
    {
        mayHold = false;
        int pidfd = -1;
        if (withPidfd && (pidfd = Libc.pidfd_open(pid)) < 0)
            return false;
        (var foundBy, mayHold) = MatchCheap(pid, criteria, ref buffer, log);
        if (foundBy is not { } found)
        {
            if (pidfd >= 0)
                Libc.close(pidfd);
            return false;
        }

        log?.Record(pid, found);
        members.Add(new Member(pid, found, pidfd));
        return true;
    }

    /// <summary>The PIDs of <paramref name="span"/> that may be processes, newest first.</summary>
    internal static IEnumerable<int> Candidates(PidSpan span)
    {
        // Probing a PID that is free costs one failed syscall; listing /proc costs about as much per process.
        const int probeLimit = 256;
        if (!span.All && span.Count <= probeLimit)
            return span.NewestFirst();
        var pids = ListPids();
        pids.Reverse();
        return span.All ? pids : pids.Where(span.Contains);
    }

    /// <summary>How <paramref name="pid"/> belongs to the tree right now, or <c>null</c> (including when it is gone or a zombie).</summary>
    public static FoundBy? Match(int pid, TreeCriteria criteria, ref byte[] buffer)
    {
        var (foundBy, mayHold) = MatchCheap(pid, criteria, ref buffer);
        if (foundBy is not null)
            return foundBy;
        if (mayHold && criteria.PipeLinks.Count > 0 && HoldsWriteEnd(pid, criteria.PipeLinkBytes, ref buffer, []))
            return FoundBy.PipeHolder;
        return null;
    }

    /// <summary>
    /// The session/group and environment-tag criteria. Without a match, <c>MayHold</c> says whether the process may
    /// still be a member through the pipes (false when it is gone, or a zombie of the session).
    /// </summary>
    /// <param name="pid">The candidate.</param>
    /// <param name="criteria">What identifies the tree.</param>
    /// <param name="buffer">Reused for /proc reads.</param>
    /// <param name="log">When signalling: a session or group member is recorded here at once.</param>
    private static (FoundBy? FoundBy, bool MayHold) MatchCheap(int pid, TreeCriteria criteria, ref byte[] buffer, KillLog? log = null)
    {
        if (criteria.SessionId is { } session)
        {
            // Two syscalls (one for a group member) instead of reading and parsing /proc/PID/stat for every process.
            int group = Libc.getpgid(pid);
            int sid = group == session ? session : Libc.getsid(pid);
            if (group < 0 && sid < 0)
                return (null, false);
            if (group == session || sid == session)
            {
                // A zombie is not a member (the child itself is one until it is reaped). A process whose command
                // line can be read still has its memory, so it is not one: when signalling, that read (needed for
                // the log anyway) settles it, and only a process without one costs a read of its stat.
                if (log is not null && log.TryRecordWithCommandLine(pid, FoundBy.ProcessGroup))
                    return (FoundBy.ProcessGroup, false);
                return ReadStat(pid, ref buffer) is { State: not ('Z' or 'X') } ? (FoundBy.ProcessGroup, false) : (null, false);
            }
        }

        if (!MayBeMemberOutsideLeaf(pid, criteria))
            return (null, false);

        // A zombie has neither an environment nor descriptors, so it matches neither of these; its uid is still
        // shown, so the uid check reads the state too.
        FoundBy found;
        if (criteria.ExclusiveUid is { } uid && RunsAs(pid, uid, ref buffer) is { } runsAs)
        {
            if (!runsAs)
                return (null, false);
            found = FoundBy.Uid;
        }
        else if (HasEnvironmentEntry(pid, criteria.TreeTagBytes, ref buffer))
        {
            found = FoundBy.EnvironmentTag;
        }
        else
        {
            return (null, true);
        }

        if (criteria.ExcludedCgroupLine is { } excluded && IsInCgroup(pid, excluded, ref buffer))
            return (null, false);
        return (found, false);
    }

    /// <summary>
    /// For criteria that look outside a tree's leaf for its exclusive uid: whether <paramref name="pid"/> may be the
    /// tree's, from its effective uid alone (one statx). Only a process running as that uid or as root can be: an
    /// unprivileged process cannot leave its leaf, so a tree process outside it was put there by something
    /// privileged, and runs as the uid (the uid finds it) or, having gained root, as root (its tag may still find it);
    /// a tree process runs as any other uid only through a setuid program, which leaves it in the leaf. Every other
    /// process (on a busy server, mostly other tasks' processes) is passed over without reading its status and
    /// environment; one whose uid statx cannot tell is examined as before. <c>true</c> for any other criteria.
    /// </summary>
    public static bool MayBeMemberOutsideLeaf(int pid, TreeCriteria criteria)
    {
        long euid = UidNotRead;
        return MayBeMemberOutsideLeaf(pid, criteria, ref euid);
    }

    /// <summary>The value of an effective uid not read yet.</summary>
    internal const long UidNotRead = -2;

    /// <summary><see cref="MayBeMemberOutsideLeaf(int, TreeCriteria)"/>, reading <paramref name="euid"/> only if it is still <see cref="UidNotRead"/> (a scan of many trees reads it once per process).</summary>
    internal static bool MayBeMemberOutsideLeaf(int pid, TreeCriteria criteria, ref long euid)
    {
        if (criteria.ExcludedCgroupLine is null || criteria.ExclusiveUid is not { } uid)
            return true;
        if (euid == UidNotRead)
            euid = ProcFs.EffectiveUid(pid);
        return euid == uid || euid == 0 || euid == ProcFs.UidUnknown;
    }

    /// <summary>
    /// <c>true</c> when <paramref name="pid"/> is a live process whose real, effective and saved uid are all
    /// <paramref name="uid"/> (the Uid: line of /proc/PID/status); <c>false</c> for a zombie of that uid (it is no
    /// member, and holds nothing); <c>null</c> when it runs as anyone else or is gone.
    /// </summary>
    public static bool? RunsAs(int pid, int uid, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "status"u8, ref buffer);
        if (n <= 0)
            return null;
        var status = buffer.AsSpan(0, n);
        int at = status.IndexOf("\nUid:"u8);
        if (at < 0)
            return null;
        var ids = status[(at + 5)..];
        for (int i = 0; i < 3; i++)
        {
            ids = SkipBlanks(ids);
            if (!Utf8Parser.TryParse(ids, out long id, out int consumed) || id != uid)
                return null;
            ids = ids[consumed..];
        }

        int state = status.IndexOf("\nState:\t"u8);
        return state < 0 || state + 8 >= n || status[state + 8] is not ((byte)'Z' or (byte)'X');
    }

    /// <summary>Whether the cgroup v2 line of /proc/PID/cgroup is exactly <paramref name="line"/> (<c>0::/path</c>).</summary>
    public static bool IsInCgroup(int pid, ReadOnlySpan<byte> line, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "cgroup"u8, ref buffer);
        if (n <= 0)
            return false;
        foreach (var entry in buffer.AsSpan(0, n).Split((byte)'\n'))
        {
            if (buffer.AsSpan(entry).SequenceEqual(line))
                return true;
        }

        return false;
    }

    public readonly record struct ProcStat(char State, int ParentPid, int ProcessGroup, int Session);

    public static ProcStat? ReadStat(int pid, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "stat"u8, ref buffer);
        if (n <= 0)
            return null;

        // "pid (comm) S ppid pgrp session ..." where comm may contain spaces and parentheses.
        var span = buffer.AsSpan(0, n);
        int close = span.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= n)
            return null;
        var rest = span[(close + 2)..];
        char state = (char)rest[0];
        rest = rest[1..];
        if (!NextInt(ref rest, out int ppid) || !NextInt(ref rest, out int group) || !NextInt(ref rest, out int session))
            return null;
        return new ProcStat(state, ppid, group, session);
    }

    /// <summary>Skips one space and parses a (possibly negative) decimal field.</summary>
    private static bool NextInt(ref Span<byte> s, out int value)
    {
        value = 0;
        if (s.Length < 2 || s[0] != (byte)' ')
            return false;
        int i = 1;
        bool negative = s[i] == (byte)'-';
        if (negative)
            i++;
        int start = i;
        while (i < s.Length && (uint)(s[i] - '0') <= 9)
            value = value * 10 + (s[i++] - '0');
        if (i == start)
            return false;
        if (negative)
            value = -value;
        s = s[i..];
        return true;
    }

    /// <summary>An exact NUL-delimited entry: <c>CORRAL_TREE_ID=abc</c> does not match <c>CORRAL_TREE_ID=abcdef</c>.</summary>
    public static bool HasEnvironmentEntry(int pid, string entry, ref byte[] buffer) =>
        HasEnvironmentEntry(pid, Encoding.ASCII.GetBytes(entry), ref buffer);

    public static bool HasEnvironmentEntry(int pid, ReadOnlySpan<byte> entry, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "environ"u8, ref buffer);
        if (n <= 0)
            return false;
        var environ = buffer.AsSpan(0, n);
        int start = 0;
        while (start < environ.Length)
        {
            int end = environ[start..].IndexOf((byte)0);
            var item = end < 0 ? environ[start..] : environ.Slice(start, end);
            if (item.SequenceEqual(entry))
                return true;
            if (end < 0)
                break;
            start += end + 1;
        }

        return false;
    }

    /// <summary>Whether any fd of <paramref name="pid"/> is the write end of one of the pipes (readlink + fdinfo, never stat).</summary>
    public static bool HoldsWriteEnd(int pid, IReadOnlyList<string> pipeLinks, ref byte[] buffer) =>
        HoldsWriteEnd(pid, pipeLinks.Select(l => Encoding.ASCII.GetBytes(l)).ToArray(), ref buffer, []);

    private static bool HoldsWriteEnd(int pid, byte[][] pipeLinks, ref byte[] buffer, List<int> fds)
    {
        fds.Clear();
        if (!ProcFs.ListFds(pid, fds))
            return false;
        Span<byte> link = stackalloc byte[64];
        foreach (int fd in fds)
        {
            int n = ProcFs.ReadFdLink(pid, fd, link);
            if (n <= 0 || !Contains(pipeLinks, link[..n]))
                continue;
            if (IsOwnWriteEnd(pid, fd, ref buffer))
                return true;
        }

        return false;
    }

    /// <summary>Whether <paramref name="pid"/>'s <paramref name="fd"/> (a tree's pipe) is open for writing and is its own descriptor, not <see cref="IsOurCopy">our copy</see>.</summary>
    internal static bool IsOwnWriteEnd(int pid, int fd, ref byte[] buffer) =>
        DescriptorFlags(pid, fd, ref buffer) is >= 0 and var flags && IsWrite(flags) && !IsOurCopy(pid, flags, ref buffer);

    /// <summary>
    /// Whether a write end that <paramref name="pid"/> holds (its fdinfo <paramref name="flags"/>) is our own
    /// descriptor rather than one of its own: <paramref name="pid"/> is one of our threads (a thread id is a PID of
    /// the window too), or a child of ours between clone and exec (another tree's child being spawned, a
    /// <c>Process.Start</c> child), which holds a copy of our descriptor table until exec closes it. Such a process
    /// belongs to no tree, whatever write end we hold (a caller may hold one, as a test does). The copy is known by
    /// its close-on-exec flag and its parent (us): both hold until the very exec that closes it, so no exec can fall
    /// between this check and the fdinfo read it is given. A tree's own child is its session's leader, matched
    /// before any descriptor is looked at. Asked only of a write end found, so the usual scan never pays for it.
    /// </summary>
    internal static bool IsOurCopy(int pid, int flags, ref byte[] buffer)
    {
        if (Libc.access($"/proc/self/task/{pid}", Libc.F_OK) == 0)
            return true;
        return (flags & Libc.O_CLOEXEC) != 0 && ReadStat(pid, ref buffer) is { ParentPid: var parent } && parent == Environment.ProcessId;
    }

    /// <summary>The descriptors of <paramref name="pid"/> that are the write end of the pipe named <paramref name="pipeLink"/>.</summary>
    public static List<int> WriteEndDescriptors(int pid, string pipeLink, ref byte[] buffer)
    {
        var result = new List<int>();
        var fds = new List<int>();
        if (!ProcFs.ListFds(pid, fds))
            return result;
        byte[] target = Encoding.ASCII.GetBytes(pipeLink);
        Span<byte> link = stackalloc byte[64];
        foreach (int fd in fds)
        {
            int n = ProcFs.ReadFdLink(pid, fd, link);
            if (n > 0 && link[..n].SequenceEqual(target) && IsWritable(pid, fd, ref buffer))
                result.Add(fd);
        }

        result.Sort();
        return result;
    }

    private static bool Contains(byte[][] links, ReadOnlySpan<byte> link)
    {
        foreach (byte[] l in links)
        {
            if (link.SequenceEqual(l))
                return true;
        }

        return false;
    }

    /// <summary>The text without its leading spaces and tabs (the separator after a /proc field's name).</summary>
    private static Span<byte> SkipBlanks(Span<byte> text)
    {
        int i = 0;
        while (i < text.Length && text[i] is (byte)' ' or (byte)'\t')
            i++;
        return text[i..];
    }

    internal static bool IsWritable(int pid, int fd, ref byte[] buffer) => DescriptorFlags(pid, fd, ref buffer) is >= 0 and var flags && IsWrite(flags);

    /// <summary>Whether descriptor flags open the file for writing.</summary>
    internal static bool IsWrite(int flags) => (flags & Libc.O_ACCMODE) != Libc.O_RDONLY;

    /// <summary>The flags: line of /proc/PID/fdinfo/FD (access mode, O_CLOEXEC…), or -1 when it cannot be read.</summary>
    internal static int DescriptorFlags(int pid, int fd, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "fdinfo"u8, fd, ref buffer);
        if (n <= 0)
            return -1;
        var text = buffer.AsSpan(0, n);
        int at = text.IndexOf("flags:"u8);
        if (at < 0)
            return -1;
        var digits = SkipBlanks(text[(at + 6)..]);
        int flags = 0;
        for (int i = 0; i < digits.Length && (uint)(digits[i] - '0') <= 7; i++)
            flags = flags * 8 + (digits[i] - '0');
        return flags;
    }

    /// <summary>The command line with NULs as spaces, capped at 200 characters.</summary>
    public static string CommandLine(int pid)
    {
        Span<byte> buffer = stackalloc byte[1024];
        int n = ProcFs.ReadOnce(pid, "cmdline"u8, buffer);
        if (n > 0)
            return DecodeCommandLine(buffer[..n], isComm: false);
        n = ProcFs.ReadOnce(pid, "comm"u8, buffer);
        return DecodeCommandLine(buffer[..Math.Max(n, 0)], isComm: true);
    }

    /// <summary>
    /// Raw /proc/PID/cmdline bytes as report text: NULs as spaces, capped at 200 characters; a process without one
    /// (kernel thread, or already exiting) is shown by its comm in brackets.
    /// </summary>
    public static string DecodeCommandLine(ReadOnlySpan<byte> raw, bool isComm)
    {
        if (isComm)
            return raw.IsEmpty ? "" : "[" + Encoding.UTF8.GetString(raw).Trim() + "]";
        string text = Encoding.UTF8.GetString(raw).Replace('\0', ' ').Trim();
        return text.Length <= 200 ? text : text[..199] + "…";
    }

    /// <summary>The cgroup v2 path (relative to the hierarchy root) of a process, from its "0::" line.</summary>
    public static string? CgroupOf(int pid)
    {
        byte[] buffer = new byte[1024];
        int n = Fd.ReadFile($"/proc/{pid}/cgroup", ref buffer);
        if (n <= 0)
            return null;
        foreach (string line in Encoding.UTF8.GetString(buffer, 0, n).Split('\n'))
        {
            if (line.StartsWith("0::", StringComparison.Ordinal))
                return line[3..];
        }

        return null;
    }
}
