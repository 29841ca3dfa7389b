using System.Text;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>
/// Finds a writable cgroup v2 hierarchy with cgroup.kill and the parent cgroup named for Corral under which every
/// tree gets its own leaf. Discovery runs once; a host without one simply gets session containment.
/// </summary>
internal sealed class CgroupHost
{
    /// <summary>Overrides the parent cgroup (an absolute path in a cgroup2 mount), for delegated subtrees.</summary>
    public const string ParentVariable = "CORRAL_CGROUP_PARENT";

    private static readonly Lazy<CgroupHost?> s_instance = new(Discover);

    /// <summary>After a failed attempt to enable controllers, the next one waits this long (the cause may pass: a process that leaves).</summary>
    private static readonly TimeSpan RetryEnable = TimeSpan.FromSeconds(10);

    private readonly Lock _controllersGate = new();
    private volatile LeafControllers _controllers;
    private long _enableAfter;
    private bool _enabledOnce;

    private CgroupHost(string mountPoint, string parentPath, bool parentConfigured)
    {
        MountPoint = mountPoint;
        ParentPath = parentPath;
        ParentConfigured = parentConfigured;
        _controllers = CgroupControllers.Current(parentPath);
    }

    public static CgroupHost? Instance => s_instance.Value;

    public static string? UnavailableReason { get; private set; }

    public string MountPoint { get; }

    public string ParentPath { get; }

    /// <summary>The parent came from <see cref="ParentVariable"/>.</summary>
    public bool ParentConfigured { get; }

    /// <summary>The controllers enabled for new leaves, as last seen.</summary>
    public LeafControllers Controllers => _controllers;

    /// <summary>
    /// Enables memory, pids and cpu for the leaves where the host delegates them (see <see cref="CgroupControllers"/>),
    /// the first time a tree asks for a limit; afterwards the answer is remembered (a failure is retried after a while).
    /// </summary>
    public LeafControllers EnsureControllers()
    {
        var known = _controllers;
        if (known.All || (_enabledOnce && Environment.TickCount64 < Volatile.Read(ref _enableAfter)))
            return known;
        lock (_controllersGate)
        {
            if (_controllers.All || (_enabledOnce && Environment.TickCount64 < _enableAfter))
                return _controllers;
            var result = CgroupControllers.Enable(MountPoint, ParentPath, ParentConfigured);
            _enabledOnce = true;
            _enableAfter = Environment.TickCount64 + (long)RetryEnable.TotalMilliseconds;
            return _controllers = result;
        }
    }

    public CgroupLeaf? TryCreateLeaf(string treeId, out string? error)
    {
        // mkdir(2) directly: one syscall on the spawn path (Directory.CreateDirectory stats first).
        string path = Path.Combine(ParentPath, treeId);
        if (Libc.mkdir(path, Convert.ToInt32("755", 8)) != 0)
        {
            error = $"cannot create cgroup {path}: {Libc.Describe(Libc.LastError)}";
            return null;
        }

        error = null;
        return new CgroupLeaf(path, "/" + Path.GetRelativePath(MountPoint, path)) { Controllers = _controllers };
    }

    private static CgroupHost? Discover()
    {
        try
        {
            string? mount = FindCgroup2Mount();
            if (mount is null)
                return Unavailable("no cgroup2 hierarchy is mounted");

            string? configured = Environment.GetEnvironmentVariable(ParentVariable) is { Length: > 0 } value ? value : null;
            string parent = configured ?? Path.Combine(mount + (ProcScanner.CgroupOf(Environment.ProcessId) ?? "/"), "corral");
            if (!parent.StartsWith(mount + "/", StringComparison.Ordinal))
                return Unavailable($"{parent} is not inside the cgroup2 mount {mount}");

            Directory.CreateDirectory(parent);
            if (configured is null)
                CloseListing(parent);
            if (!File.Exists(Path.Combine(parent, "cgroup.kill")))
                return Unavailable("the kernel has no cgroup.kill (Linux 5.14+)");
            if (Libc.access(Path.Combine(parent, "cgroup.procs"), Libc.W_OK) != 0)
                return Unavailable($"{parent}/cgroup.procs is not writable");
            RemoveStaleLeaves(parent);
            return new CgroupHost(mount, parent, configured is not null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unavailable(e.Message);
        }
    }

    /// <summary>
    /// Makes Corral's own parent cgroup traverse-only for others (0711): a tree may read its own leaf, whose name it
    /// knows, but not list the others' and read their <c>cgroup.procs</c>, which would tell it every other tree's PIDs.
    /// A parent an operator configured keeps its mode.
    /// </summary>
    private static void CloseListing(string parent)
    {
        try
        {
            File.SetUnixFileMode(parent, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Not this process's to change (a parent made by another user): it stays as it is.
        }
    }

    /// <summary>
    /// Removes empty leaves left by processes that ended before their trees did (a detached tree outliving its
    /// owner, a crash after the tree emptied). rmdir fails on any leaf that still holds a process or a child
    /// cgroup, and a leaf is only used within moments of its creation, so a leaf older than this that is empty
    /// is nobody's.
    /// </summary>
    internal static void RemoveStaleLeaves(string parent)
    {
        var staleBefore = DateTime.UtcNow - TimeSpan.FromMinutes(10);
        foreach (var leaf in new DirectoryInfo(parent).EnumerateDirectories())
        {
            if (Guid.TryParseExact(leaf.Name, "N", out _) && leaf.LastWriteTimeUtc < staleBefore)
                Remove(leaf.FullName);
        }
    }

    /// <summary>
    /// rmdir of a cgroup; when that fails because a Corral that ran inside it nested cgroups of its own there, and no
    /// process is left anywhere under it, those go first, deepest first. A cgroup with a process under it keeps every
    /// cgroup it holds, even empty ones: a live Corral inside may be about to use them.
    /// </summary>
    internal static bool Remove(string cgroup)
    {
        if (Libc.rmdir(cgroup) == 0)
            return true;
        if (Libc.LastError != Libc.EBUSY)
            return false;
        try
        {
            // "populated" covers the whole subtree: 0 means nothing runs in it, so nothing nested in it is in use.
            if (CgroupLeaf.Populated(File.ReadAllBytes(System.IO.Path.Combine(cgroup, "cgroup.events"))))
                return false;
            foreach (string nested in Directory.EnumerateDirectories(cgroup))
                Remove(nested);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false; // removed meanwhile, or not ours to list
        }

        return Libc.rmdir(cgroup) == 0;
    }

    private static CgroupHost? Unavailable(string reason)
    {
        UnavailableReason = reason;
        return null;
    }

    private static string? FindCgroup2Mount()
    {
        // mountinfo: id parent maj:min root mountpoint options [optional...] - fstype source superoptions
        foreach (string line in File.ReadLines("/proc/self/mountinfo"))
        {
            int dash = line.IndexOf(" - ", StringComparison.Ordinal);
            if (dash < 0)
                continue;
            string[] after = line[(dash + 3)..].Split(' ');
            string[] before = line[..dash].Split(' ');
            if (after[0] == "cgroup2" && before.Length > 4 && before[3] == "/" && !before[5].Split(',').Contains("ro"))
                return before[4].Replace("\\040", " ");
        }

        return null;
    }
}

/// <summary>One tree's leaf cgroup.</summary>
internal sealed class CgroupLeaf
{
    /// <summary>Up to this many processes, <see cref="WaitEmptyAsync"/> also watches each one's exit.</summary>
    private const int WatchLimit = 64;

    public CgroupLeaf(string path, string relativePath)
    {
        Path = path;
        RelativePath = relativePath;
    }

    public string Path { get; }

    /// <summary>The path as /proc/PID/cgroup shows it.</summary>
    public string RelativePath { get; }

    public string ProcsPath => System.IO.Path.Combine(Path, "cgroup.procs");

    /// <summary>The controllers enabled for the leaf when it was created (its memory.*, pids.* and cpu.max files exist).</summary>
    public LeafControllers Controllers { get; init; } = LeafControllers.None("not created by Corral");

    /// <summary>The PIDs listed in cgroup.procs (parsed in place: a big tree's listing allocates no strings).</summary>
    public List<int> ReadProcs()
    {
        var pids = new List<int>();
        byte[] buffer = new byte[4096];
        int n = Fd.ReadFile(ProcsPath, ref buffer, 16 << 20);
        int value = 0;
        bool digits = false;
        for (int i = 0; i < n; i++)
        {
            uint d = (uint)(buffer[i] - '0');
            if (d <= 9)
            {
                value = value * 10 + (int)d;
                digits = true;
            }
            else
            {
                if (digits)
                    pids.Add(value);
                value = 0;
                digits = false;
            }
        }

        if (digits)
            pids.Add(value);
        return pids;
    }

    public bool IsPopulated()
    {
        byte[] buffer = new byte[256];
        int n = Fd.ReadFile(System.IO.Path.Combine(Path, "cgroup.events"), ref buffer);
        return n <= 0 ? Directory.Exists(Path) && ReadProcs().Count > 0 : Populated(buffer.AsSpan(0, n));
    }

    /// <summary>
    /// Waits for "populated 0" in cgroup.events. Woken by the file's change notification (EPOLLPRI) or by the exit of
    /// every process listed in the leaf (pidfds), whichever comes first: the kernel rate-limits cgroup.events
    /// notifications (about 10 ms after the previous one), while "populated" itself changes as the last process exits.
    /// </summary>
    public async Task<bool> WaitEmptyAsync(TimeSpan timeout)
    {
        int fd = Fd.OpenRead(System.IO.Path.Combine(Path, "cgroup.events"));
        if (fd < 0)
            return !IsPopulated();
        using var poll = Io.PollLoop.Shared.Register(fd);
        try
        {
            byte[] buffer = new byte[256];
            if (timeout <= TimeSpan.Zero)
                return !PopulatedAt(fd, buffer);
            using var deadline = new CancellationTokenSource(timeout);
            var expired = Task.Delay(Timeout.Infinite, deadline.Token);
            while (true)
            {
                // Arm first, then read: a change between the two is reported by the armed wait.
                var changed = poll.WaitAsync(Libc.EPOLLPRI);
                if (!PopulatedAt(fd, buffer))
                    return true;
                // Watching every process costs a pidfd and an epoll registration each, while they are exiting: only
                // worth it for a few. For many, the change notification is prompt (the rate limit only delays one
                // that follows another within 10 ms, and "populated" changes once per teardown).
                var procs = ReadProcs();
                using var exits = Io.ExitWatch.For(procs.Count <= WatchLimit ? procs : []);
                var exited = exits.Count > 0 ? exits.AllExited : changed;
                if (await Task.WhenAny(changed, exited, expired).ConfigureAwait(false) == expired)
                    return !PopulatedAt(fd, buffer);
            }
        }
        finally
        {
            poll.Dispose();
            Fd.Close(ref fd);
        }
    }

    private static unsafe bool PopulatedAt(int fd, byte[] buffer)
    {
        fixed (byte* b = buffer)
        {
            nint n = Libc.pread(fd, b, buffer.Length, 0);
            return n <= 0 || Populated(buffer.AsSpan(0, (int)n));
        }
    }

    internal static bool Populated(ReadOnlySpan<byte> events) => events.IndexOf("populated 1"u8) >= 0;

    /// <summary>SIGKILLs every process in the leaf, including ones forking at that moment.</summary>
    public int Kill() => Fd.WriteFile(System.IO.Path.Combine(Path, "cgroup.kill"), "1");

    public bool TryRemove() => CgroupHost.Remove(Path);

    /// <summary>
    /// Removes the leaf once its last process has exited (a detached tree's), watched on the poll thread through
    /// cgroup.events: nothing is left behind by a tree that ends after its owner stopped caring. If this process
    /// exits first, the empty leaf stays (it holds nothing).
    /// </summary>
    public void RemoveWhenEmpty()
    {
        int fd = Fd.OpenRead(System.IO.Path.Combine(Path, "cgroup.events"));
        if (fd < 0)
            return;
        var poll = Io.PollLoop.Shared.Register(fd);
        byte[] buffer = new byte[256];
        var gate = new Lock();
        bool done = false;
        void Check(uint events)
        {
            // The first check runs here and the next ones on the poll thread: one at a time, and none after the end.
            lock (gate)
            {
                if (done)
                    return;

                // Arm first, then read: a change between the two is reported by the armed wait.
                poll.OnReady(Libc.EPOLLPRI, Check);
                if (PopulatedAt(fd, buffer))
                    return;
                done = true;
                poll.Dispose();
                Fd.Close(ref fd);
            }

            TryRemove();
        }

        Check(0);
    }
}
