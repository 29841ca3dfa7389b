using System.Globalization;
using Corral.Processes;
using Corral.Server.Hosting;
using Corral.Server.Internal.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Isolation;

/// <summary>How tasks are separated from the server and from each other.</summary>
internal enum IsolationMode
{
    /// <summary>Tasks run as the server's own user.</summary>
    None,

    /// <summary>Every task runs as one configured user.</summary>
    Fixed,

    /// <summary>Every task runs as a uid of its own, never reused while a process of it lives.</summary>
    Dynamic,
}

/// <summary>
/// Gives each task its identity. With <see cref="IsolationMode.Dynamic"/>, a uid from a range that collides with no
/// host user: exclusive to the task (so its tree's teardown finds every process of that uid, wherever it went), a
/// member of the agents group, and never handed out while a process of it may live (a uid whose teardown left
/// something behind is held back until nothing of it is left; one that a process held at start-up is never this
/// server's). A uid given back is swept first: what it left
/// in the host's shared directories and in its own is removed (<see cref="Leftovers"/>), in batches in the background,
/// and only then may it be handed out again, before any new one (its own directories and mount namespace are ready:
/// <see cref="PrivateDirectories"/>), so a server uses about as many uids as it runs tasks at once; new ones come
/// round-robin from the range.
/// </summary>
internal sealed class TaskUsers : IHostedService
{
    private readonly IsolationOptions _options;
    private readonly ILogger<TaskUsers> _logger;
    private readonly Lock _gate = new();
    private readonly HashSet<int> _inUse = [];
    private readonly HashSet<int> _quarantined = []; // held back by this process: a teardown or sweep left something of them
    private readonly HashSet<int> _foreign = []; // something ran as them at start, or a tree could not start as them: never this process's to take
    private readonly HashSet<int> _unswept = [];
    private readonly HashSet<int> _sharedReach = []; // of those, the ones whose tasks may have written in the host's shared directories
    private readonly Stack<int> _ready = new(); // given back clean and swept, the latest on top
    private readonly string[] _sweepDirectories;
    private readonly SemaphoreSlim _sweeping = new(1, 1);
    private readonly SemaphoreSlim _dirty = new(0, 1);
    private readonly CancellationTokenSource _stopping = new();
    private readonly TimeProvider _time;
    private Task _sweepLoop = Task.CompletedTask;
    private UidLeases? _leases;
    private ProcessUser? _fixed;
    private int _cursor;

    private readonly ServerPaths _paths;

    /// <summary>How long given-back uids gather before a sweep: one scan of the directories serves them all.</summary>
    private static readonly TimeSpan SweepBatch = TimeSpan.FromMilliseconds(250);

    /// <summary>How long after a failed scan the next one is tried.</summary>
    private static readonly TimeSpan SweepRetry = TimeSpan.FromSeconds(5);

    private volatile string? _sweepFailure;
    private long? _requalifiedAt;

    /// <summary>How often, at most, held-back uids are checked again (each check reads every process's status).</summary>
    private static readonly TimeSpan RequalifyInterval = TimeSpan.FromSeconds(5);

    public TaskUsers(IOptions<CorralOptions> options, ServerPaths paths, TimeProvider time, ILogger<TaskUsers> logger)
    {
        _paths = paths;
        _time = time;
        _options = options.Value.Isolation;
        // Links resolved once (/dev/shm may be one to /run/shm): the scan then follows none.
        _sweepDirectories = [.. _options.SweepDirectories.Split(':', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(d => Path.IsPathFullyQualified(d) ? Interop.Libc.RealPath(d) ?? d
                : throw new ServerConfigurationException($"Corral:Isolation:SweepDirectories: '{d}' is not an absolute path."))];
        _logger = logger;
        bool root = Interop.Libc.geteuid() == 0;
        string requested = _options.User ?? (root ? IsolationOptions.Dynamic : IsolationOptions.None);
        Explicit = _options.User is not null;
        Mode = requested switch
        {
            IsolationOptions.None => IsolationMode.None,
            IsolationOptions.Dynamic => IsolationMode.Dynamic,
            _ => IsolationMode.Fixed,
        };
        if (Mode == IsolationMode.Fixed)
        {
            try
            {
                _fixed = ProcessUser.Parse(requested);
            }
            catch (ArgumentException e)
            {
                throw new ServerConfigurationException($"Corral:Isolation:User: {e.Message}");
            }
        }

        if (Mode == IsolationMode.Dynamic)
        {
            if (!root)
                throw new ServerConfigurationException("Corral:Isolation:User=dynamic needs the server to run as root (to give tasks uids of their own).");
            if (_options.UidRangeStart < 1000 || _options.UidRangeCount < 1 || (long)_options.UidRangeStart + _options.UidRangeCount > int.MaxValue)
                throw new ServerConfigurationException("Corral:Isolation:UidRangeStart/UidRangeCount: a range of uids from 1000 up to 2^31 - 1.");
            if (Collision(_options.UidRangeStart, _options.UidRangeCount) is { } collision)
                throw new ServerConfigurationException($"Corral:Isolation:UidRangeStart: the dynamic uid range {_options.UidRangeStart}–{_options.UidRangeStart + _options.UidRangeCount - 1} {collision}.");
            _cursor = Random.Shared.Next(_options.UidRangeCount);
        }
    }

    public IsolationMode Mode { get; private set; }

    /// <summary>Whether the mode was configured rather than chosen by default.</summary>
    public bool Explicit { get; }

    /// <summary>Whether tasks run as a user other than the server's.</summary>
    public bool Isolated => Mode != IsolationMode.None;

    /// <summary>
    /// The shared directories a task sees as its own, each with the name of its own in its uid's directory
    /// (<see cref="ServerPaths.PrivateOf"/>): the same for every task of a uid, so its tasks join one mount namespace
    /// rather than each making one, and emptied by the sweep (as root: no task reaches them but through its mounts)
    /// before the uid serves another task. Empty when the host cannot, or it is turned off.
    /// </summary>
    public IReadOnlyList<(string Shared, string Own)> PrivateDirectories { get; private set; } = [];

    /// <summary>Whether each task with a uid of its own gets an IPC namespace of its own (checked at start).</summary>
    public bool PrivateIpc { get; private set; }

    /// <summary>Whether each task with a uid of its own sees only its own processes in <c>/proc</c> (checked at start).</summary>
    public bool OwnProcessesOnly { get; private set; }

    /// <summary>Whether <paramref name="uid"/> is one that tasks run as (any of the dynamic range, whoever leased it; the configured user), and not the server's own.</summary>
    public bool IsTaskUid(int uid) => Mode switch
    {
        IsolationMode.Dynamic => uid >= _options.UidRangeStart && uid - _options.UidRangeStart < _options.UidRangeCount,
        IsolationMode.Fixed => uid == _fixed!.Uid && uid != Interop.Libc.geteuid(),
        _ => false,
    };

    /// <summary>The group every dynamic uid belongs to (shared workdirs).</summary>
    public int AgentsGroup => _options.AgentsGroup ?? _options.UidRangeStart - 1;

    /// <summary>
    /// The identity for a new task's tree, or <c>null</c> for the server's own. Release it when the task ends. Waits
    /// only when every free uid is still to be swept (a range smaller than the tasks it serves).
    /// </summary>
    /// <exception cref="NoFreeUidException">No uid of the range can be handed out.</exception>
    public async ValueTask<ProcessUser?> AllocateAsync(CancellationToken cancellationToken = default)
    {
        if (Mode == IsolationMode.Fixed)
            return _fixed;
        if (Mode == IsolationMode.None)
            return null;
        bool rechecked = false;
        while (true)
        {
            bool sweep;
            lock (_gate)
            {
                // A uid swept clean first: its tasks' mount namespace and own directories exist already.
                while (_ready.TryPop(out int ready))
                {
                    if (TakeLocked(ready) is { } user)
                        return user;
                }

                for (int tried = 0; tried < _options.UidRangeCount; tried++)
                {
                    int uid = _options.UidRangeStart + _cursor;
                    _cursor = (_cursor + 1) % _options.UidRangeCount;
                    if (TakeLocked(uid) is { } user)
                        return user;
                }

                sweep = _unswept.Count > 0;
                if (!sweep && (rechecked || _quarantined.Count == 0))
                    throw new NoFreeUidException($"No uid is free for the task: every uid of the dynamic range ({_options.UidRangeStart}–{_options.UidRangeStart + _options.UidRangeCount - 1}) is in use or held back ({_quarantined.Count} after a teardown or sweep that left something of them, {_foreign.Count} that something else ran as at start).");
            }

            if (!sweep)
            {
                rechecked = true;
                Requalify();
                continue;
            }

            if (!await SweepAsync(cancellationToken, _stopping.Token).ConfigureAwait(false) && _sweepFailure is { } failure)
                throw new NoFreeUidException($"No uid is free for the task: every free uid of the dynamic range waits for a sweep of {string.Join(", ", _sweepDirectories)}, which failed: {failure}.");
        }
    }

    /// <summary>The identity of <paramref name="uid"/>, taken for a task, if it is free here and its host-wide lease could be taken (under <see cref="_gate"/>).</summary>
    private ProcessUser? TakeLocked(int uid)
    {
        if (_inUse.Contains(uid) || _quarantined.Contains(uid) || _foreign.Contains(uid) || _unswept.Contains(uid) || _leases?.TryTake(uid, Holder) == false)
            return null;
        _inUse.Add(uid);
        return new ProcessUser(uid, uid) { SupplementaryGroups = [AgentsGroup], Exclusive = true };
    }

    /// <summary>
    /// The uids this process held back (a teardown or a sweep left something of them) that nothing runs as any more are
    /// swept and serve again, so the range does not shrink for good. Checked when no other uid is free, at most every
    /// <see cref="RequalifyInterval"/>. Only uids held back before the scan of /proc began qualify: one held back
    /// meanwhile may have a process the scan passed over. A uid something else ran as at start is never taken.
    /// </summary>
    private void Requalify()
    {
        List<int> candidates;
        lock (_gate)
        {
            if (_quarantined.Count == 0 || (_requalifiedAt is { } at && _time.GetElapsedTime(at) < RequalifyInterval))
                return;
            _requalifiedAt = _time.GetTimestamp();
            candidates = [.. _quarantined];
        }

        if (UidsInUse() is not { } alive)
            return; // the scan cannot be trusted this time (PIDs may have wrapped, a status was unreadable)
        int still;
        lock (_gate)
        {
            foreach (int uid in candidates)
            {
                // Its lease is still marked by this data directory's server (no other server took it meanwhile).
                if (alive.Contains(uid) || !_quarantined.Contains(uid) || _leases?.TryReclaim(uid, Holder) == false)
                    continue;
                _quarantined.Remove(uid);
                UnsweptLocked(uid, reachedShared: true);
                if (_dirty.CurrentCount == 0)
                    _dirty.Release();
            }

            still = _quarantined.Count;
        }

        if (still > 0)
            _logger.LogWarning("{Count} uid(s) of the dynamic range are still held back: something of them is left", still);
    }

    /// <summary>
    /// A task is done with its uid. <paramref name="clean"/>: its teardown left nothing of it alive; otherwise the uid
    /// is held back until nothing runs as it any more (a survivor might still run as it): see <see cref="Requalify"/>.
    /// <paramref name="ownDirectories"/>: what its tree saw in place of the shared directories
    /// (<see cref="ProcessSpec.PrivateDirectories"/>); when that is every one of them and the tree had an IPC namespace
    /// of its own, its sweep need not scan the host's. <paramref name="spoiled"/>: a tree could not start as it; it is not
    /// handed out again.
    /// </summary>
    public void Release(ProcessUser? user, bool clean, IReadOnlyDictionary<string, string>? ownDirectories, bool spoiled = false)
    {
        if (Mode != IsolationMode.Dynamic || user is null)
            return;
        if (spoiled)
        {
            // A tree could not start as it (its keyrings made unclearable by an earlier task of it): it would fail every
            // task it served, and no check of its processes can tell it is fit again. Never this process's again.
            _logger.LogWarning("uid {Uid} is no longer handed out: a task could not start as it", user.Uid);
            lock (_gate)
            {
                _inUse.Remove(user.Uid);
                _leases?.Release(user.Uid, clean: false);
                _foreign.Add(user.Uid);
            }

            return;
        }

        // Without an IPC namespace of its own, a queue its mq_open made is the host's, in the host's /dev/mqueue.
        bool reachedShared = !PrivateIpc || !Covers(_sweepDirectories, ownDirectories, Directory.Exists);
        lock (_gate)
        {
            _inUse.Remove(user.Uid);
            if (clean && _sweepDirectories.Length > 0)
            {
                UnsweptLocked(user.Uid, reachedShared); // its lease is held until the sweep
                if (_dirty.CurrentCount == 0)
                    _dirty.Release();
                return;
            }

            _leases?.Release(user.Uid, clean);
            if (clean)
                _ready.Push(user.Uid);
            else
                _quarantined.Add(user.Uid);
        }
    }

    /// <summary>
    /// Whether a tree that saw <paramref name="own"/> in place of the shared directories could write in none of the
    /// host's: each of them was bound, or does not exist (checked after the run: only root makes one, and one removed
    /// meanwhile took the task's entries with it).
    /// </summary>
    internal static bool Covers(IReadOnlyList<string> shared, IReadOnlyDictionary<string, string>? own, Func<string, bool> exists) =>
        shared.All(d => own?.ContainsKey(d) == true || !exists(d));

    /// <summary>Marks <paramref name="uid"/> to be swept (under <see cref="_gate"/>); <paramref name="reachedShared"/>: in the host's shared directories too.</summary>
    private void UnsweptLocked(int uid, bool reachedShared)
    {
        _unswept.Add(uid);
        if (reachedShared)
            _sharedReach.Add(uid);
    }

    /// <summary>
    /// Removes what the uids given back so far left in the shared directories, then lets them be handed out again; a
    /// uid whose leftovers could not all be removed is held back (<see cref="Requalify"/>). <c>false</c> when the
    /// directories could not be scanned: the uids stay to be swept, and the reason is in <see cref="_sweepFailure"/>.
    /// <paramref name="waiting"/> stops the wait for another sweep; <paramref name="cancellationToken"/> the removal
    /// itself (a waiter that gives up must not stop a removal it would share with others).
    /// </summary>
    private async Task<bool> SweepAsync(CancellationToken waiting, CancellationToken cancellationToken)
    {
        await _sweeping.WaitAsync(waiting).ConfigureAwait(false);
        try
        {
            HashSet<int> uids;
            bool scanShared;
            lock (_gate)
            {
                uids = [.. _unswept];
                scanShared = uids.Overlaps(_sharedReach);
            }

            if (uids.Count == 0)
                return true;
            var scan = Scan(uids.Contains, scanShared);
            if (scan.Found.Count > 0 && scan.Failure is null)
            {
                foreach (var (uid, paths) in scan.Found)
                {
                    // In its own directories, as root: nobody else reaches them, and nothing of the uid runs any more.
                    byte[] own = System.Text.Encoding.UTF8.GetBytes(_paths.PrivateOf(uid) + "/");
                    var mine = paths.Where(p => p.AsSpan().StartsWith(own)).ToList();
                    var shared = paths.Where(p => !p.AsSpan().StartsWith(own)).ToList();
                    if ((shared.Count > 0 && !await Leftovers.RemoveAsync(uid, shared, cancellationToken).ConfigureAwait(false))
                        || (mine.Count > 0 && !await Leftovers.RemoveAsync(null, mine, cancellationToken).ConfigureAwait(false)))
                        _logger.LogWarning("Could not start the removal of what uid {Uid} left in {Directories}", uid, string.Join(", ", _sweepDirectories));
                }

                scan = Scan(scan.Found.ContainsKey, scanShared); // what is left now
            }

            if (scan.Failure is { } failure)
            {
                _sweepFailure = failure;
                _logger.LogWarning("Could not scan {Directories} for what tasks left ({Failure}): {Count} uid(s) wait to be swept", string.Join(", ", _sweepDirectories), failure, uids.Count);
                return false;
            }

            _sweepFailure = null;
            lock (_gate)
            {
                foreach (int uid in uids)
                {
                    _unswept.Remove(uid);
                    bool clean = !scan.Found.ContainsKey(uid);
                    if (clean)
                        _sharedReach.Remove(uid);
                    _leases?.Release(uid, clean);
                    if (clean)
                        _ready.Push(uid);
                    else
                        _quarantined.Add(uid);
                }
            }

            if (scan.Found.Count > 0)
                _logger.LogWarning("Could not remove everything uid(s) {Uids} left in {Directories}: they are held back until it can be removed", string.Join(", ", scan.Found.Keys), string.Join(", ", _sweepDirectories));
            return true;
        }
        finally
        {
            _sweeping.Release();
        }
    }

    /// <summary>What the uids <paramref name="wanted"/> left in their own directories and, when <paramref name="shared"/>, in the host's shared ones.</summary>
    private Leftovers.Scan Scan(Func<int, bool> wanted, bool shared = true) => shared
        ? Leftovers.Merge(Leftovers.Find(_sweepDirectories, wanted, AgentsGroup), Leftovers.FindPrivate(_paths.Private, wanted))
        : Leftovers.FindPrivate(_paths.Private, wanted);

    /// <summary>Sweeps what is given back, in batches; after a failed scan, again a few seconds later.</summary>
    private async Task SweepLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            bool swept = true;
            var pause = SweepBatch;
            while (true)
            {
                if (swept)
                    await _dirty.WaitAsync(cancellationToken).ConfigureAwait(false);
                await Task.Delay(swept ? pause : SweepRetry, _time, cancellationToken).ConfigureAwait(false);
                long started = _time.GetTimestamp();
                try
                {
                    swept = await SweepAsync(cancellationToken, cancellationToken).ConfigureAwait(false);
                    // Sweeping takes at most a fifth of a core, however many names the directories hold.
                    pause = TimeSpan.FromTicks(Math.Max(SweepBatch.Ticks, _time.GetElapsedTime(started).Ticks * 4));
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    swept = false;
                    _logger.LogError(e, "Sweeping the shared directories failed");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (Mode != IsolationMode.Dynamic)
            return;

        // A task's own directories are inside the data directory: its uid must be able to pass through every parent.
        if (Unreachable(_paths.DataDirectory) is { } closed)
        {
            string why = $"'{closed}' does not let other users through (no o+x), so tasks with uids of their own could not reach their directories under {_paths.DataDirectory}";
            if (Explicit)
                throw new ServerConfigurationException($"Corral:Isolation:User=dynamic: {why}: chmod o+x it, or keep the data elsewhere (e.g. /var/lib/corral).");
            _logger.LogWarning("Tasks run as the server's own user: {Why}. Keep the data elsewhere (e.g. /var/lib/corral) to give each task a uid of its own", why);
            Mode = IsolationMode.None;
            return;
        }

        // Uids of the range that something runs as now (what a previous server left, or another tool) are skipped. The
        // scan must be a proof: a uid it missed would be reclaimed and handed out with a process of it alive.
        var alive = await ProvenUidsInUseAsync(cancellationToken).ConfigureAwait(false);
        foreach (int uid in alive)
        {
            if (InRange(uid))
                _foreign.Add(uid);
        }

        // Other servers on this host lease from the same range: a uid is taken by one server at a time.
        var leases = UidLeases.Open(_options.UidLeaseDirectory, out string? problem);
        if (problem is not null)
            _logger.LogWarning("Dynamic uids are not leased host-wide ({Problem}): another Corral server on this host must use a range of its own (Corral:Isolation:UidRangeStart)", problem);
        // A task's directory is closed at its end; after a crash, here, before any uid can serve another task.
        CloseTaskDirectories();
        lock (_gate)
        {
            // A uid a dead holder left marked stays leased here until swept (another server must not take it before).
            foreach (int uid in leases.Reclaim(alive, Holder, keep: _sweepDirectories.Length > 0))
                UnsweptLocked(uid, reachedShared: true);
            _leases = leases;
        }

        if (_foreign.Count > 0)
            _logger.LogWarning("{Count} uid(s) of the dynamic range have processes running as them: this server does not hand them out", _foreign.Count);

        // Can this host change a child's identity, and give it directories and IPC of its own? Real spawns say, as a uid
        // leased for them (never one another server's task runs as, whose teardown or scan would meet the probe).
        int? leased = null;
        lock (_gate)
        {
            for (int i = 0; i < _options.UidRangeCount && leased is null; i++)
            {
                int uid = _options.UidRangeStart + (_cursor + i) % _options.UidRangeCount;
                if (!_foreign.Contains(uid) && !_unswept.Contains(uid) && leases.TryTake(uid, Holder))
                    leased = uid;
            }
        }

        try
        {
            if (!await ProbeAsync(new ProcessUser(leased ?? Nobody, leased ?? Nobody) { SupplementaryGroups = [AgentsGroup] }, cancellationToken).ConfigureAwait(false))
            {
                lock (_gate)
                {
                    _leases = null;
                    leases.Dispose(); // what is marked stays marked, for a start that can use it
                }

                return;
            }
        }
        finally
        {
            if (leased is { } uid)
            {
                lock (_gate)
                    leases.Release(uid, clean: true); // /bin/true, in /, left nothing
            }
        }

        // What tasks of an earlier process left (it crashed, or stopped before its last sweep) goes before serving.
        if (_sweepDirectories.Length > 0)
        {
            var left = Scan(uid => InRange(uid) && !alive.Contains(uid));
            if (left.Failure is { } failure)
                throw new ServerConfigurationException($"Corral:Isolation:SweepDirectories: cannot scan for what tasks left ({failure}); fix the directory or set the list to those that can be scanned.");
            lock (_gate)
            {
                foreach (int uid in left.Found.Keys)
                {
                    if (_leases.TryTake(uid, Holder)) // not if another server holds it, or this one already does
                        UnsweptLocked(uid, reachedShared: true);
                }

                // Swept in the background: the uids are held until then, and serving need not wait for rm.
                if (_unswept.Count > 0)
                    _dirty.Release();
            }

            _sweepLoop = SweepLoopAsync(_stopping.Token);
        }
    }

    /// <summary>The uid the probes run as when every uid of the range is leased by others: the host's overflow uid, never a task's.</summary>
    private const int Nobody = 65534;

    /// <summary>Probes what the host lets a spawn as <paramref name="probe"/> do; <c>false</c> when it cannot change a child's identity at all (tasks then run as the server's user).</summary>
    private async Task<bool> ProbeAsync(ProcessUser probe, CancellationToken cancellationToken)
    {
        // Can this host change a child's identity at all (Corral's native spawn)? One real spawn says.
        try
        {
            await ProcessTree.RunAsync(new ProcessSpec("/bin/true") { User = probe, WorkingDirectory = "/", InheritEnvironment = false }, cancellationToken).ConfigureAwait(false);
        }
        catch (ProcessSpawnException e) when (e.Failure == SpawnFailure.UserUnavailable)
        {
            if (Explicit)
                throw new ServerConfigurationException("Corral:Isolation:User=dynamic, but this host cannot start a process as another user: " + e.Message);
            _logger.LogWarning("Tasks run as the server's own user: this host cannot start a process as another user ({Reason})", e.Message);
            Mode = IsolationMode.None;
            return false;
        }

        // Can a task see directories of its own in place of the shared ones? One real spawn says.
        if (_options.PrivateTmp)
            PrivateDirectories = await ProbePrivateDirectoriesAsync(probe, cancellationToken).ConfigureAwait(false);
        // Binding over a directory that holds the tasks' own would hide those: such a one stays the host's, and swept.
        foreach (var (shared, _) in PrivateDirectories.Where(d => _paths.Tasks.StartsWith(d.Shared + "/", StringComparison.Ordinal)))
            _logger.LogWarning("Tasks share {Directory} with the host, and each sweep reads every name in it: the data directory {Data} is inside it. Keep the data elsewhere (e.g. /var/lib/corral) to give each task its own",
                shared, _paths.DataDirectory);
        if (_options.PrivateIpc)
        {
            PrivateIpc = await AllowsAsync(probe, s => s with { PrivateIpc = true },
                "Tasks share the host's System V IPC objects and POSIX message queues", cancellationToken).ConfigureAwait(false);
        }

        if (_options.OwnProcessesOnly)
        {
            OwnProcessesOnly = await AllowsAsync(probe, s => s with { OwnProcessesOnly = true },
                "Tasks see every process of the host in /proc, command lines included", cancellationToken).ConfigureAwait(false);
        }

        return true;
    }

    /// <summary>The uids of every process now, proven (<see cref="UidsInUse"/>): tried again while processes are being created too fast to prove it.</summary>
    private async Task<HashSet<int>> ProvenUidsInUseAsync(CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            if (UidsInUse() is { } alive)
                return alive;
            if (attempt == StartScanAttempts)
                throw new ServerConfigurationException($"Corral:Isolation:User=dynamic: {StartScanAttempts} scans of /proc in a row could not prove which uids processes run as (a status unreadable, or processes created faster than a scan reads them), so no uid of the range can be told free.");
            await Task.Delay(StartScanPause, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>How many scans of /proc a start tries before it gives up, and the pause between two.</summary>
    private const int StartScanAttempts = 50;

    private static readonly TimeSpan StartScanPause = TimeSpan.FromMilliseconds(100);

    /// <summary>The shared directories that exist here, each with its own directory's name, if a spawn can bind them (else none).</summary>
    private async Task<IReadOnlyList<(string Shared, string Own)>> ProbePrivateDirectoriesAsync(ProcessUser probe, CancellationToken cancellationToken)
    {
        var directories = _sweepDirectories.Where(Directory.Exists)
            .Select(d => (d, d.TrimStart('/').Replace('/', '-'))).ToList();
        if (directories.Count == 0)
            return [];
        string scratch = Directory.CreateTempSubdirectory("corral-private-probe-").FullName;
        try
        {
            if (await RefusalAsync(new ProcessSpec("/bin/true") { User = probe, PrivateDirectories = directories.ToDictionary(d => d.Item1, _ => scratch) },
                    cancellationToken).ConfigureAwait(false) is not { } reason)
                return directories;
            _logger.LogWarning("Tasks share {Directories} with the host (what they leave there is swept after them): this host cannot give them their own ({Reason})",
                string.Join(", ", directories.Select(d => d.Item1)), reason);
            return [];
        }
        finally
        {
            Directory.Delete(scratch);
        }
    }

    /// <summary>Whether a spawn as <paramref name="probe"/> may have <paramref name="option"/> here; if not, the warning says what tasks go without.</summary>
    private async Task<bool> AllowsAsync(ProcessUser probe, Func<ProcessSpec, ProcessSpec> option, string without, CancellationToken cancellationToken)
    {
        if (await RefusalAsync(option(new ProcessSpec("/bin/true") { User = probe }), cancellationToken).ConfigureAwait(false) is not { } reason)
            return true;
        _logger.LogWarning("{Without}: this host cannot give them their own ({Reason})", without, reason);
        return false;
    }

    /// <summary>Why this host cannot run <paramref name="spec"/> (one real spawn, in <c>/</c> with no environment), or <c>null</c> when it ran.</summary>
    private static async Task<string?> RefusalAsync(ProcessSpec spec, CancellationToken cancellationToken)
    {
        try
        {
            await ProcessTree.RunAsync(spec with { WorkingDirectory = "/", InheritEnvironment = false }, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (ProcessSpawnException e)
        {
            return e.Message;
        }
    }

    /// <summary>Makes every task directory the server's alone (0700): a task that runs again opens its own (<see cref="TaskWorkspace.Prepare"/>).</summary>
    private void CloseTaskDirectories()
    {
        if (!Directory.Exists(_paths.Tasks))
            return;
        foreach (string directory in Directory.EnumerateDirectories(_paths.Tasks))
        {
            try
            {
                File.SetUnixFileMode(directory, Files.PrivateDirectory);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning(e, "Could not close {Directory}", directory);
            }
        }
    }

    private bool InRange(int uid) => uid >= _options.UidRangeStart && uid - _options.UidRangeStart < _options.UidRangeCount;

    /// <summary>Stops after the scheduler: every task has given its uid back (a uid whose tree left something stays marked).</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await _sweepLoop.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            // The last tasks' uids, under the host's stop deadline (the loop's token is cancelled); the next start sweeps what this misses.
            await SweepAsync(cancellationToken, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }

        lock (_gate)
            _leases?.Dispose();
    }

    /// <summary>Who holds a leased uid, written in its lease file for an operator: this process and its data directory.</summary>
    private string Holder => $"pid {Environment.ProcessId} data {_paths.DataDirectory}";

    /// <summary>The first parent of <paramref name="directory"/> that others cannot pass through, or <c>null</c>.</summary>
    private static string? Unreachable(string directory)
    {
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(directory)); dir is not null; dir = Path.GetDirectoryName(dir))
        {
            if (Directory.Exists(dir) && (File.GetUnixFileMode(dir) & UnixFileMode.OtherExecute) == 0)
                return dir;
        }

        return null;
    }

    /// <summary>What in the host's user databases overlaps the range, or <c>null</c>.</summary>
    private static string? Collision(int start, int count)
    {
        long end = (long)start + count;
        foreach (string line in ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length > 2 && long.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out long uid) && uid >= start && uid < end)
                return $"holds uid {uid} of user '{fields[0]}' (/etc/passwd)";
        }

        foreach (string file in new[] { "/etc/subuid", "/etc/subgid" })
        {
            foreach (string line in ReadLines(file))
            {
                var fields = line.Split(':');
                if (fields.Length > 2 && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out long first)
                    && long.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out long n) && first < end && first + n > start)
                    return $"overlaps the subordinate range {first}–{first + n - 1} of '{fields[0]}' ({file})";
            }
        }

        return null;
    }

    private static IEnumerable<string> ReadLines(string path) => File.Exists(path) ? File.ReadLines(path) : [];

    /// <summary>How many times, at most, the PIDs handed out during the previous pass are read again before giving up.</summary>
    private const int MaxRescans = 16;

    /// <summary>
    /// The uids (real, effective, saved, file system) of every process now, from /proc/PID/status, or <c>null</c> when
    /// that cannot be proven this time (allocation went round, a status was unreadable, processes kept being created).
    /// One pass in PID order misses a process that a process ahead of the pass forked behind it (once allocation has
    /// wrapped, the next PID may lie below the pass) and then exited. So the PIDs handed out during each pass are read
    /// again, until a pass during which none was: a process alive now was either alive all through the first pass, or
    /// got one of those PIDs and was alive all through the pass that read it. (Only unprivileged processes, whose uids
    /// cannot change, are proven so: the range's.)
    /// </summary>
    private static HashSet<int>? UidsInUse()
    {
        if (PidCounters.Read() is not { } before)
            return null;
        var uids = ScanUids(new HashSet<int>());
        int read = before.LastPid; // every PID up to here, as handed out before the last pass, has been read since
        for (int pass = 0; uids is not null && pass < MaxRescans; pass++)
        {
            if (PidCounters.Read() is not { } now || now.MayHaveWrappedSince(before))
                return null;
            if (now.LastPid == read)
                return uids; // nothing was created during the last pass
            for (int pid = read + 1; pid <= now.LastPid && uids is not null; pid++)
            {
                if (!ReadUids(Path.Combine("/proc", pid.ToString(CultureInfo.InvariantCulture)), uids))
                    uids = null;
            }

            read = now.LastPid;
        }

        return null;
    }

    /// <summary>The uids of the processes /proc lists, added to <paramref name="uids"/>; <c>null</c> when a status was unreadable.</summary>
    private static HashSet<int>? ScanUids(HashSet<int> uids)
    {
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out _) && !ReadUids(dir, uids))
                return null;
        }

        return uids;
    }

    /// <summary>Adds the uids of the process (or thread) at <paramref name="dir"/>; <c>false</c> when it is alive, perhaps, and unread.</summary>
    private static bool ReadUids(string dir, HashSet<int> uids)
    {
        try
        {
            foreach (string line in File.ReadLines(Path.Combine(dir, "status")))
            {
                if (!line.StartsWith("Uid:", StringComparison.Ordinal))
                    continue;
                foreach (string field in line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (int.TryParse(field, out int uid))
                        uids.Add(uid);
                }

                break;
            }
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            // gone meanwhile, or never was
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }

        return true;
    }
}
