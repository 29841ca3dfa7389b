using Corral.Processes.Interop;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Io;
using Corral.Processes.Internal.Output;
using Corral.Processes.Internal.Spawning;
using Corral.Processes.Internal.Teardown;

namespace Corral.Processes.Internal;

/// <summary>
/// Runs one tree from spawn to reaping. Completion is driven by the direct child's exit, not by EOF: on exit it
/// takes everything already in the pipes, applies the linger policy to what is left, reads to EOF with a bound,
/// and only then reaps the child.
/// </summary>
internal sealed class TreeSupervisor
{
    private readonly ProcessSpec _spec;
    private readonly ChildProcess _child;
    private readonly TreeContainment _tree;
    private readonly OutputPump _stdout;
    private readonly OutputPump _stderr;
    private readonly KillLog _killed = new();
    private readonly TaskCompletionSource<(ExitReason Reason, StopSignal Signal)> _stop = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly DateTimeOffset _startedAt;
    private readonly CancellationTokenRegistration _cancellation;
    private readonly CancellationTokenSource? _timeout;
    private readonly EnforcedLimits _enforced;

    private TreeSupervisor(
        ProcessSpec spec, string treeId, ChildProcess child, TreeContainment tree, OutputPump stdout, OutputPump stderr,
        InputPipeStream? stdin, CaptureBuffer? capture, DateTimeOffset startedAt, EnforcedLimits enforced, CancellationToken cancellationToken)
    {
        _spec = spec;
        _enforced = enforced;
        TreeId = treeId;
        _child = child;
        _tree = tree;
        _stdout = stdout;
        _stderr = stderr;
        StandardInput = stdin;
        Capture = capture;
        _startedAt = startedAt;

        if (spec.Timeout is { } timeout)
        {
            _timeout = new CancellationTokenSource(timeout);
            _timeout.Token.Register(() => RequestStop(ExitReason.TimedOut, spec.Teardown.FirstSignal));
        }

        _cancellation = cancellationToken.Register(() => RequestStop(ExitReason.Canceled, spec.Teardown.FirstSignal));
        Completion = SuperviseAsync();
    }

    public string TreeId { get; }

    public ProcessSpec Spec => _spec;

    public int Pid => _child.Pid;

    public ContainmentKind Containment => _tree.Kind;

    public string? CgroupPath => _tree.CgroupPath;

    public InputPipeStream? StandardInput { get; }

    public CaptureBuffer? Capture { get; }

    public Task<ProcessOutcome> Completion { get; }

    internal TreeContainment Tree => _tree;

    internal OutputPump StdoutPump => _stdout;

    public void RequestStop(ExitReason reason, StopSignal signal) => _stop.TrySetResult((reason, signal));

    /// <summary>The tree's live processes; empty once the tree is finished.</summary>
    public IReadOnlyList<LiveProcess> GetProcesses() => Completion.IsCompleted ? [] : ProcessLedger.Read(_tree.ListMembers());

    public static TreeSupervisor Start(ProcessSpec spec, CancellationToken cancellationToken)
    {
        string treeId = Guid.NewGuid().ToString("N");
        var request = SpawnRequest.Validate(spec, treeId);

        int stdinChild = -1, stdinParent = -1, outRead = -1, outWrite = -1, errRead = -1, errWrite = -1;
        CgroupLeaf? leaf = null;
        try
        {
            (stdinChild, stdinParent) = OpenInput(spec.StandardInput);
            var limits = spec.ResourceLimits is { Any: true } asked ? asked : null;
            leaf = CreateLeaf(spec.Containment, treeId, limits is not null, out string? noLeaf);
            var enforced = ApplyLimits(limits, leaf, noLeaf);
            (outRead, outWrite) = Fd.CreatePipe();
            (errRead, errWrite) = Fd.CreatePipe();

            // The PID window bounds every scan: session mode's, and in cgroup mode the exclusive uid's (outside the leaf).
            var exclusiveUid = spec.User is { Exclusive: true } user ? user.Uid : (int?)null;
            var counters = leaf is null || exclusiveUid is not null ? PidWindow.CountersBeforeSpawn() : null;
            var startedAt = DateTimeOffset.UtcNow;
            var spawned = Spawner.Spawn(request, stdinChild, outWrite, errWrite, leaf);
            int pid = spawned.Pid;
            var child = new ChildProcess(pid, spawned.Pidfd);
            Fd.Close(ref stdinChild);
            Fd.Close(ref outWrite);
            Fd.Close(ref errWrite);

            Fd.SetNonBlocking(outRead);
            Fd.SetNonBlocking(errRead);
            var capture = spec.StandardOutput is OutputTarget.CaptureTarget || spec.StandardError is OutputTarget.CaptureTarget
                ? new CaptureBuffer(spec.Limits, spec.StandardOutput is OutputTarget.CaptureTarget, spec.StandardError is OutputTarget.CaptureTarget)
                : null;
            var stdout = new OutputPump(outRead, OutputStream.StandardOutput, SinkFor(spec.StandardOutput, capture));
            var stderr = new OutputPump(errRead, OutputStream.StandardError, SinkFor(spec.StandardError, capture));
            outRead = errRead = -1;

            string tag = SpawnRequest.TreeIdVariable + "=" + treeId;
            var window = PidWindow.After(pid, counters);
            TreeContainment tree = leaf is not null
                ? new CgroupTree(leaf, exclusiveUid is { } uid
                    ? new SessionTree(new TreeCriteria(null, tag, [], window, uid, ExcludedCgroup: leaf.RelativePath))
                    : null)
                : new SessionTree(new TreeCriteria(pid, tag, new[] { stdout.PipeLink, stderr.PipeLink }.OfType<string>().ToArray(), window, exclusiveUid),
                    () => stdout.WritersGone() && stderr.WritersGone());

            InputPipeStream? stdin = null;
            if (stdinParent >= 0)
            {
                Fd.SetNonBlocking(stdinParent);
                stdin = new InputPipeStream(stdinParent);
                stdinParent = -1;
                if (spec.StandardInput is InputSource.BytesInput bytes)
                    _ = FeedAsync(stdin, bytes.Bytes);
            }

            return new TreeSupervisor(spec, treeId, child, tree, stdout, stderr, stdin, capture, startedAt, enforced, cancellationToken);
        }
        catch
        {
            Fd.Close(ref stdinChild);
            Fd.Close(ref stdinParent);
            Fd.Close(ref outRead);
            Fd.Close(ref outWrite);
            Fd.Close(ref errRead);
            Fd.Close(ref errWrite);
            leaf?.TryRemove();
            throw;
        }
    }

    private static async Task FeedAsync(InputPipeStream stdin, ReadOnlyMemory<byte> bytes)
    {
        try
        {
            await stdin.WriteAsync(bytes).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The child stopped reading; what it did not take is its business.
        }
        finally
        {
            await stdin.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static IOutputSink SinkFor(OutputTarget target, CaptureBuffer? capture) => target switch
    {
        OutputTarget.CaptureTarget => capture!,
        OutputTarget.StreamTarget s => new StreamSink(s.Stream),
        _ => DiscardSink.Instance,
    };

    private static (int Child, int Parent) OpenInput(InputSource source)
    {
        switch (source)
        {
            case InputSource.PipeInput or InputSource.BytesInput:
                var (read, write) = Fd.CreatePipe();
                return (read, write);
            case InputSource.FileInput file:
                int fd = Fd.OpenRead(Path.GetFullPath(file.Path));
                if (fd < 0 || Directory.Exists(file.Path))
                {
                    int errno = fd < 0 ? Libc.LastError : Libc.EISDIR;
                    Fd.Close(ref fd);
                    throw new ProcessSpawnException(SpawnFailure.BadInputFile, file.Path, "cannot open the input file: " + Libc.Describe(errno), errno);
                }

                return (fd, -1);
            default:
                int devNull = Fd.OpenRead("/dev/null");
                if (devNull < 0)
                    throw new ProcessSpawnException(SpawnFailure.SystemError, "/dev/null", Libc.Describe(Libc.LastError), Libc.LastError);
                return (devNull, -1);
        }
    }

    /// <summary>The tree's leaf, or <c>null</c> (and why) for a session tree.</summary>
    /// <param name="mode">The spec's containment.</param>
    /// <param name="treeId">The leaf's name.</param>
    /// <param name="withLimits">The tree asks for limits: enable the controllers first, so the new leaf has their files.</param>
    /// <param name="noLeaf">Why there is no leaf, when there is none.</param>
    private static CgroupLeaf? CreateLeaf(ContainmentMode mode, string treeId, bool withLimits, out string? noLeaf)
    {
        noLeaf = "session containment was asked for";
        if (mode == ContainmentMode.Session)
            return null;
        var host = CgroupHost.Instance;
        string? error = CgroupHost.UnavailableReason;
        if (withLimits)
            host?.EnsureControllers();
        var leaf = host?.TryCreateLeaf(treeId, out error);
        if (leaf is null && mode == ContainmentMode.Cgroup)
            throw new ProcessSpawnException(SpawnFailure.ContainmentUnavailable, host?.ParentPath ?? "cgroup2", error ?? "no writable cgroup v2 hierarchy");
        noLeaf = error ?? "no writable cgroup v2 hierarchy";
        return leaf;
    }

    /// <summary>
    /// Writes the limits to the leaf before anything runs in it; when a required one cannot be enforced, throws
    /// (the caller removes the leaf).
    /// </summary>
    private static EnforcedLimits ApplyLimits(ResourceLimits? limits, CgroupLeaf? leaf, string? noLeaf)
    {
        if (limits is null)
            return EnforcedLimits.None;
        var (enforced, reason) = leaf is null ? (EnforcedLimits.None, LeafLimits.WithoutLeaf(noLeaf ?? "none was created")) : LeafLimits.Apply(leaf, limits);
        bool missing = (limits.MemoryMaxBytes is not null && !enforced.Memory) || (limits.PidsMax is not null && !enforced.Pids)
                       || (limits.CpuMax is not null && !enforced.Cpu);
        if (missing && limits.Required)
        {
            throw new ProcessSpawnException(SpawnFailure.LimitUnavailable, CgroupHost.Instance?.ParentPath ?? "cgroup2",
                "a required resource limit cannot be enforced: " + reason);
        }

        return enforced;
    }

    /// <summary>The receipt: from the leaf in cgroup mode (before it is removed), nothing but the enforcement otherwise.</summary>
    private ResourceUsage ReadReceipt() =>
        _tree is CgroupTree cgroup ? LeafLimits.Receipt(cgroup.Leaf, _enforced) : new ResourceUsage { Enforced = _enforced };

    private async Task<ProcessOutcome> SuperviseAsync()
    {
        ExitReason? stopReason = null;
        var teardown = TimeSpan.Zero;
        var options = _spec.Teardown;
        try
        {
            // Started from the constructor: runs inline only until this first wait. If the child is already gone
            // (or a stop was requested), yield so that supervision never runs on the thread calling Start.
            var first = Task.WhenAny(_child.Exited, _stop.Task);
            if (first.IsCompleted)
                await Task.Yield();
            if (await first.ConfigureAwait(false) != _child.Exited)
            {
                var (reason, signal) = _stop.Task.Result;
                stopReason = reason;
                teardown += await TeardownLadder.RunAsync(_tree, _child, options, signal, StandardInput, includeChild: true, _killed).ConfigureAwait(false);
            }

            if (await WithinAsync(_child.Exited, options.KillWait).ConfigureAwait(false))
                _tree.ChildExited(_child.Pid);
            var exitedAt = DateTimeOffset.UtcNow;

            // Everything the child wrote is in the pipes once it has exited: take it all before anything else.
            await Task.WhenAll(_stdout.DrainAvailableAsync(), _stderr.DrainAvailableAsync()).ConfigureAwait(false);

            bool detach = stopReason is null && _spec.Linger == LingerPolicy.Detach;
            if (!detach)
                teardown += await ApplyLingerAsync(stopReason is not null).ConfigureAwait(false);

            // Read to EOF with a bound; if a holder survived everything, take what the kernel buffer holds and stop.
            var pumps = Task.WhenAll(_stdout.Completion, _stderr.Completion);
            if (!detach)
                await WithinAsync(pumps, options.KillWait).ConfigureAwait(false);
            await Task.WhenAll(_stdout.StopAsync(), _stderr.StopAsync()).ConfigureAwait(false);
            bool holderSurvived = !(_stdout.ReachedEof && _stderr.ReachedEof);

            var exit = _child.Reap();
            var resources = ReadReceipt();
            if (detach)
                _tree.ReleaseWhenEmpty();
            else
                _tree.Release();

            return new ProcessOutcome
            {
                Command = [Spec.FileName, .. Spec.Arguments],
                Pid = _child.Pid,
                TreeId = TreeId,
                Reason = stopReason ?? (exit.Signal is not null ? ExitReason.Signaled : ExitReason.Exited),
                ExitCode = exit.ExitCode,
                Signal = exit.Signal,
                StartedAt = _startedAt,
                ExitedAt = exitedAt,
                CompletedAt = DateTimeOffset.UtcNow,
                TeardownDuration = teardown,
                Containment = _tree.Kind,
                Killed = _killed.Snapshot(),
                StandardOutputBytes = _stdout.BytesRead,
                StandardErrorBytes = _stderr.BytesRead,
                StandardOutputTruncated = Capture?.StdoutTruncated ?? false,
                StandardErrorTruncated = Capture?.StderrTruncated ?? false,
                HolderSurvived = holderSurvived,
                OutputError = _stdout.SinkFailure ?? _stderr.SinkFailure,
                Resources = resources,
            };
        }
        finally
        {
            if (StandardInput is not null)
                await StandardInput.DisposeAsync().ConfigureAwait(false);
            _child.Dispose();
            _timeout?.Dispose();
            await _cancellation.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Waits for <paramref name="task"/> at most <paramref name="timeout"/>; the timer is released as soon as it completes.</summary>
    private static async Task<bool> WithinAsync(Task task, TimeSpan timeout)
    {
        if (task.IsCompleted)
            return true;
        using var cts = new CancellationTokenSource();
        var delay = Task.Delay(timeout, cts.Token);
        bool completed = await Task.WhenAny(task, delay).ConfigureAwait(false) == task;
        cts.Cancel();
        return completed;
    }

    private async Task<TimeSpan> ApplyLingerAsync(bool alreadyStopped)
    {
        var options = _spec.Teardown;
        var signal = options.FirstSignal;
        if (!alreadyStopped && _spec.Linger == LingerPolicy.Wait)
        {
            var empty = _tree.WaitEmptyAsync(_spec.LingerTimeout);
            if (await Task.WhenAny(empty, _stop.Task).ConfigureAwait(false) == empty && empty.Result)
                return TimeSpan.Zero;
            if (_stop.Task.IsCompleted)
                signal = _stop.Task.Result.Signal;
        }

        if (_tree.IsEmpty())
            return TimeSpan.Zero;
        return await TeardownLadder.RunAsync(_tree, _child, options, signal, StandardInput, includeChild: false, _killed).ConfigureAwait(false);
    }
}
