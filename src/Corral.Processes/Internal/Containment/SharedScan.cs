using System.Buffers.Text;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;
using Corral.Processes.Internal.Teardown;

namespace Corral.Processes.Internal.Containment;

/// <summary>
/// Member scans for session-mode trees, with the scans that many trees ask for at the same time (stopping a
/// thousand trees at once) done as one pass over /proc. Each tree's window spans every tree started after it, so
/// one scan per tree costs quadratic time; one pass per batch reads each process's facts (group, session,
/// environment tag, pipe write ends) once and checks them against every tree of the batch.
/// </summary>
/// <remarks>
/// A scan asked for while no pass runs is done at once on the caller's thread, exactly as
/// <see cref="ProcScanner.FindMembers(TreeCriteria, Lazy{HashSet{int}}, bool, bool, KillLog?, ExitedPids?)"/>. Scans
/// asked for during a pass wait for it to end and are then done together, in the next pass (on the thread pool),
/// which starts after they were asked for: no result is older than its request.
/// </remarks>
internal static class SharedScan
{
    /// <summary>One tree's scan: the arguments of <see cref="ProcScanner.FindMembers(TreeCriteria, Lazy{HashSet{int}}, bool, bool, KillLog?, ExitedPids?)"/>.</summary>
    internal sealed class Request(TreeCriteria criteria, Lazy<HashSet<int>> protectedPids, bool checkHolders, KillLog? log, ExitedPids? exited)
    {
        public TreeCriteria Criteria => criteria;
        public Lazy<HashSet<int>> ProtectedPids => protectedPids;
        public bool CheckHolders => checkHolders;
        public KillLog? Log => log;
        public ExitedPids? Exited => exited;
        public TaskCompletionSource<List<Member>> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    private static readonly Lock s_gate = new();
    private static List<Request> s_pending = [];
    private static bool s_running;

    /// <summary>The tree's members, as <see cref="ProcScanner.FindMembers(TreeCriteria, Lazy{HashSet{int}}, bool, bool, KillLog?, ExitedPids?)"/> finds them (never stopping at the first).</summary>
    public static Task<List<Member>> FindMembersAsync(TreeCriteria criteria, Lazy<HashSet<int>> protectedPids, bool checkHolders, KillLog? log, ExitedPids? exited)
    {
        var request = new Request(criteria, protectedPids, checkHolders, log, exited);
        lock (s_gate)
        {
            if (s_running)
            {
                s_pending.Add(request);
                return request.Result.Task;
            }

            s_running = true;
        }

        try
        {
            Run([request]);
        }
        finally
        {
            ContinueOrStop();
        }

        return request.Result.Task;
    }

    private static void ContinueOrStop()
    {
        lock (s_gate)
        {
            if (s_pending.Count == 0)
            {
                s_running = false;
                return;
            }
        }

        ThreadPool.UnsafeQueueUserWorkItem(static _ => Drain(), null);
    }

    private static void Drain()
    {
        List<Request> batch;
        lock (s_gate)
        {
            batch = s_pending;
            s_pending = [];
        }

        try
        {
            Run(batch);
        }
        finally
        {
            ContinueOrStop();
        }
    }

    private static void Run(List<Request> batch)
    {
        try
        {
            var results = batch.Count == 1
                ? [ProcScanner.FindMembers(batch[0].Criteria, batch[0].ProtectedPids, batch[0].CheckHolders, stopAtFirst: false, batch[0].Log, batch[0].Exited)]
                : FindAll(batch);
            for (int i = 0; i < batch.Count; i++)
                batch[i].Result.TrySetResult(results[i]);
        }
        catch (Exception e)
        {
            foreach (var request in batch)
                request.Result.TrySetException(e);
        }
    }

    /// <summary>
    /// One pass for several trees. For each tree, each process gets the verdict the tree's own scan would give it
    /// (its criteria in order: session or group, environment tag, pipe write end); a process's facts are read once.
    /// With a log, the pidfd is opened before the facts are read, as in the single scan, and a process that belongs
    /// to two trees (it holds both trees' pipes) gets a duplicate of it for the second.
    /// </summary>
    internal static List<List<Member>> FindAll(IReadOnlyList<Request> batch)
    {
        int count = batch.Count;
        var results = new List<List<Member>>(count);
        var spans = new PidSpan[count];
        var bySession = new Dictionary<int, int>();
        var byTag = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var byPipe = new Dictionary<long, List<int>>();
        var byUid = new Dictionary<int, List<int>>();
        var tagPrefixes = new List<byte[]>();
        for (int i = 0; i < count; i++)
        {
            var r = batch[i];
            results.Add([]);
            spans[i] = r.Criteria.Window?.Now() ?? PidSpan.Everything;
            if (spans[i].All)
                r.Exited?.Clear();

            if (r.Criteria.SessionId is { } session)
                bySession[session] = i;
            Add(byTag, r.Criteria.TreeTag, i);
            if (r.Criteria.ExclusiveUid is { } uid)
                Add(byUid, uid, i);
            int eq = r.Criteria.TreeTag.IndexOf('=', StringComparison.Ordinal);
            byte[] prefix = r.Criteria.TreeTagBytes[..(eq + 1)];
            if (!tagPrefixes.Any(p => p.AsSpan().SequenceEqual(prefix)))
                tagPrefixes.Add(prefix);
            if (r.CheckHolders)
            {
                foreach (string link in r.Criteria.PipeLinks)
                {
                    if (PipeInode(System.Text.Encoding.ASCII.GetBytes(link)) is { } inode)
                        Add(byPipe, inode, i);
                }
            }
        }

        int last = ProcFs.LastPid(); // what comes after is read in the rounds below, as in the single scan
        var pids = ProcScanner.ListPids();
        pids.Reverse();
        byte[] buffer = new byte[4096];
        var fds = new List<int>();
        var relevant = new List<int>(count);
        var found = new Dictionary<int, FoundBy>();
        try
        {
            foreach (int pid in pids)
                Visit(pid, fresh: false, wrapped: false);

            // The PIDs handed out during each pass, in another, until a pass during which none was (see the single scan):
            // each is newer than every tree's child, so in every tree's window.
            foreach (var (fresh, wrapped) in ProcScanner.HandedOutDuringPasses(last))
            {
                foreach (int pid in ProcScanner.Candidates(fresh))
                {
                    if (!results.Exists(members => members.Exists(m => m.Pid == pid)))
                        Visit(pid, fresh: true, wrapped);
                }
            }

            return results;
        }
        catch
        {
            foreach (var members in results)
                ProcScanner.Close(members);
            throw;
        }

        void Visit(int pid, bool fresh, bool wrapped)
        {
            relevant.Clear();
            bool anyLog = false;
            long euid = ProcScanner.UidNotRead;
            for (int i = 0; i < count; i++)
            {
                var r = batch[i];
                // After a wrap, a PID known to have exited may be a new process's.
                if ((fresh || spans[i].Contains(pid)) && !r.ProtectedPids.Value.Contains(pid) && (wrapped || r.Exited?.Contains(pid) != true)
                    && ProcScanner.MayBeMemberOutsideLeaf(pid, r.Criteria, ref euid))
                {
                    relevant.Add(i);
                    anyLog |= r.Log is not null;
                }
            }

            if (relevant.Count == 0)
                return;

            int pidfd = anyLog ? Libc.pidfd_open(pid) : -1;
            if (anyLog && pidfd < 0)
                return;
            found.Clear();
            Examine(pid, batch, relevant, new Index(bySession, byTag, byPipe, byUid, tagPrefixes), found, ref buffer, fds);
            bool handed = false;
            foreach (int i in relevant)
            {
                if (!found.TryGetValue(i, out var by))
                    continue;
                int fd = -1;
                if (batch[i].Log is { } log)
                {
                    // The first tree gets the pidfd itself, any other a duplicate: the same verified process.
                    fd = handed ? Libc.fcntl(pidfd, Libc.F_DUPFD_CLOEXEC, 0) : pidfd;
                    if (fd < 0)
                        continue;
                    handed = true;
                    log.Record(pid, by);
                }

                results[i].Add(new Member(pid, by, fd));
            }

            if (pidfd >= 0 && !handed)
                Libc.close(pidfd);
        }
    }

    /// <summary>The batch's trees by each criterion.</summary>
    private readonly record struct Index(Dictionary<int, int> BySession, Dictionary<string, List<int>> ByTag,
        Dictionary<long, List<int>> ByPipe, Dictionary<int, List<int>> ByUid, List<byte[]> TagPrefixes);

    /// <summary>Which of the <paramref name="relevant"/> trees <paramref name="pid"/> belongs to, and how.</summary>
    private static void Examine(int pid, IReadOnlyList<Request> batch, List<int> relevant, Index index,
        Dictionary<int, FoundBy> found, ref byte[] buffer, List<int> fds)
    {
        Match(pid, batch, relevant, index, found, ref buffer, fds);

        // As in MatchCheap: a process in a tree's excluded cgroup (its leaf, which lists it) is not matched here.
        foreach (int i in relevant)
        {
            if (batch[i].Criteria.ExcludedCgroupLine is { } excluded && found.ContainsKey(i) && ProcScanner.IsInCgroup(pid, excluded, ref buffer))
                found.Remove(i);
        }
    }

    private static void Match(int pid, IReadOnlyList<Request> batch, List<int> relevant, Index index,
        Dictionary<int, FoundBy> found, ref byte[] buffer, List<int> fds)
    {
        var (bySession, byTag, byPipe, byUid, tagPrefixes) = index;

        // Session or group: as in MatchCheap, and a zombie matches nothing at all (no environment, no descriptors).
        int group = Libc.getpgid(pid);
        int sid = Libc.getsid(pid);
        if (group < 0 && sid < 0)
            return;
        if ((bySession.TryGetValue(group, out int owner) || bySession.TryGetValue(sid, out owner)) && relevant.Contains(owner))
        {
            if (ProcScanner.ReadStat(pid, ref buffer) is not { State: not ('Z' or 'X') })
                return;
            found[owner] = FoundBy.ProcessGroup;
        }

        if (found.Count == relevant.Count)
            return;

        // The exclusive uids: one status read answers them all; a zombie of such a uid matches nothing.
        if (byUid.Count > 0)
        {
            foreach (var (uid, owners) in byUid)
            {
                if (!owners.Any(i => relevant.Contains(i) && !found.ContainsKey(i)))
                    continue;
                if (ProcScanner.RunsAs(pid, uid, ref buffer) is not { } live)
                    continue;
                if (!live)
                    return;
                foreach (int i in owners)
                {
                    if (relevant.Contains(i))
                        found.TryAdd(i, FoundBy.Uid);
                }

                // A process has one uid.
                break;
            }

            if (found.Count == relevant.Count)
                return;
        }

        // The environment tag: every entry that looks like one, looked up among the batch's trees.
        int n = ProcFs.ReadFile(pid, "environ"u8, ref buffer);
        var environ = buffer.AsSpan(0, Math.Max(n, 0));
        while (!environ.IsEmpty)
        {
            int end = environ.IndexOf((byte)0);
            var entry = end < 0 ? environ : environ[..end];
            foreach (byte[] prefix in tagPrefixes)
            {
                if (entry.StartsWith(prefix) && byTag.TryGetValue(System.Text.Encoding.ASCII.GetString(entry), out var owners))
                {
                    foreach (int i in owners)
                    {
                        if (relevant.Contains(i))
                            found.TryAdd(i, FoundBy.EnvironmentTag);
                    }
                }
            }

            environ = end < 0 ? [] : environ[(end + 1)..];
        }

        if (found.Count == relevant.Count || byPipe.Count == 0)
            return;

        // Pipe write ends, for the trees whose pipes may still have writers.
        fds.Clear();
        if (!ProcFs.ListFds(pid, fds))
            return;
        Span<byte> link = stackalloc byte[64];
        foreach (int fd in fds)
        {
            int length = ProcFs.ReadFdLink(pid, fd, link);
            if (length <= 0 || PipeInode(link[..length]) is not { } inode || !byPipe.TryGetValue(inode, out var owners))
                continue;
            bool wanted = false;
            foreach (int i in owners)
                wanted |= relevant.Contains(i) && !found.ContainsKey(i) && batch[i].CheckHolders;
            if (!wanted || !ProcScanner.IsOwnWriteEnd(pid, fd, ref buffer))
                continue;
            foreach (int i in owners)
            {
                if (relevant.Contains(i) && batch[i].CheckHolders)
                    found.TryAdd(i, FoundBy.PipeHolder);
            }
        }
    }

    /// <summary>The inode of a "pipe:[N]" link; <c>null</c> for anything else.</summary>
    private static long? PipeInode(ReadOnlySpan<byte> link)
    {
        if (!link.StartsWith("pipe:["u8) || link[^1] != (byte)']')
            return null;
        return Utf8Parser.TryParse(link[6..^1], out long inode, out int consumed) && consumed == link.Length - 7 ? inode : null;
    }

    private static void Add<TKey>(Dictionary<TKey, List<int>> map, TKey key, int index)
        where TKey : notnull
    {
        if (!map.TryGetValue(key, out var list))
            map[key] = list = [];
        list.Add(index);
    }
}
