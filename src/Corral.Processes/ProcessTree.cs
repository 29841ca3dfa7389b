using System.Buffers;
using System.Runtime.CompilerServices;
using Corral.Processes.Internal;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Output;
using Corral.Processes.Internal.Spawning;
using Corral.Processes.Internal.Teardown;

namespace Corral.Processes;

/// <summary>
/// A running, contained process tree. Completes when the direct child exits (never waiting on a descendant that
/// holds the output pipes), after taking every byte the child wrote and tearing down whatever remains.
/// </summary>
/// <example>
/// <code>
/// var result = await ProcessTree.RunAsync(new ProcessSpec("/bin/sh", "-c", "echo hi; setsid sleep 300 &amp;"));
/// // returns in milliseconds with "hi\n"; the sleep is gone.
/// </code>
/// </example>
public sealed class ProcessTree : IAsyncDisposable
{
    private readonly TreeSupervisor _supervisor;
    private int _readerClaimed;

    private ProcessTree(TreeSupervisor supervisor) => _supervisor = supervisor;

    /// <summary>
    /// Starts the tree. Throws <see cref="ProcessSpawnException"/> before anything runs if the spec is unusable.
    /// Cancelling <paramref name="cancellationToken"/> runs the teardown ladder (<see cref="ExitReason.Canceled"/>).
    /// </summary>
    public static ProcessTree Start(ProcessSpec spec, CancellationToken cancellationToken = default) =>
        new(TreeSupervisor.Start(spec, cancellationToken));

    /// <summary>
    /// Runs the tree to completion and returns its outcome with captured stdout and stderr. With
    /// <see cref="OverflowPolicy.Wait"/> the output is collected while it arrives, so nothing is dropped and the
    /// child is never blocked by the limit; otherwise at most <see cref="OutputLimits.MaxBufferedBytes"/> per stream is kept.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(ProcessSpec spec, CancellationToken cancellationToken = default)
    {
        await using var tree = Start(spec, cancellationToken);
        var capture = tree._supervisor.Capture;
        if (capture is null)
            return new ProcessResult(await tree.Completion.ConfigureAwait(false), ReadOnlyMemory<byte>.Empty, ReadOnlyMemory<byte>.Empty);

        if (spec.Limits.Overflow != OverflowPolicy.Wait)
        {
            var outcome = await tree.Completion.ConfigureAwait(false);
            return new ProcessResult(outcome, capture.TakeAll(OutputStream.StandardOutput), capture.TakeAll(OutputStream.StandardError));
        }

        var stdout = new ArrayBufferWriter<byte>();
        var stderr = new ArrayBufferWriter<byte>();
        await foreach (var chunk in tree.ReadChunksAsync(CancellationToken.None).ConfigureAwait(false))
            (chunk.Stream == OutputStream.StandardOutput ? stdout : stderr).Write(chunk.Bytes.Span);
        return new ProcessResult(await tree.Completion.ConfigureAwait(false), stdout.WrittenMemory, stderr.WrittenMemory);
    }

    /// <summary>The direct child's process id (also its session and process group id).</summary>
    public int Pid => _supervisor.Pid;

    /// <summary>The tree's identifier, set in its environment as <c>CORRAL_TREE_ID</c>.</summary>
    public string TreeId => _supervisor.TreeId;

    /// <summary>How the tree is contained.</summary>
    public ContainmentKind Containment => _supervisor.Containment;

    /// <summary>The tree's cgroup directory, in cgroup mode.</summary>
    public string? CgroupPath => _supervisor.CgroupPath;

    /// <summary>The child's standard input, when the spec asked for <see cref="InputSource.Pipe"/>. Dispose it to send EOF.</summary>
    public Stream StandardInput => _supervisor.StandardInput as Stream
        ?? throw new InvalidOperationException("Standard input is not a pipe: start the tree with InputSource.Pipe.");

    /// <summary>
    /// The tree's live processes right now (the live ledger): pid, parent, command line, state, resident memory,
    /// CPU time, and how each was found (the leaf in cgroup mode; the session, tag, pipes and exclusive uid in
    /// session mode; the exclusive uid outside the leaf). Only reads <c>/proc</c>, never signals. Empty once the
    /// tree is finished.
    /// </summary>
    public IReadOnlyList<LiveProcess> GetProcesses() => _supervisor.GetProcesses();

    /// <summary>Completes with the outcome once the tree is finished. Never faults for the child's own failure.</summary>
    public Task<ProcessOutcome> Completion => _supervisor.Completion;

    /// <summary>
    /// Starts the teardown ladder (reason <see cref="ExitReason.Canceled"/>). <paramref name="firstSignal"/> overrides
    /// the spec's first signal, e.g. to forward the SIGINT a caller received. Idempotent.
    /// </summary>
    public void Cancel(StopSignal? firstSignal = null) =>
        _supervisor.RequestStop(ExitReason.Canceled, firstSignal ?? _supervisor.Spec.Teardown.FirstSignal);

    /// <summary>
    /// Captured output of both streams as tagged lines, in arrival order, until both streams end.
    /// Lines longer than <see cref="OutputLimits.MaxLineLength"/> arrive as fragments. May be enumerated once.
    /// </summary>
    public IAsyncEnumerable<OutputLine> ReadLinesAsync(CancellationToken cancellationToken = default) =>
        new LineEnumerable(this, cancellationToken);

    /// <summary>Captured output of both streams as raw chunks (bytes intact), in arrival order. May be enumerated once.</summary>
    public async IAsyncEnumerable<OutputChunk> ReadChunksAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ClaimReader();
        var capture = _supervisor.Capture;
        if (capture is null)
            yield break;
        while (await capture.ReadAsync(cancellationToken).ConfigureAwait(false) is { } chunk)
            yield return chunk;
    }

    private void ClaimReader()
    {
        if (Interlocked.Exchange(ref _readerClaimed, 1) != 0)
            throw new InvalidOperationException("Captured output can be enumerated only once.");
    }

    private sealed class LineEnumerable(ProcessTree tree, CancellationToken cancellationToken) : IAsyncEnumerable<OutputLine>
    {
        public IAsyncEnumerator<OutputLine> GetAsyncEnumerator(CancellationToken enumeratorToken = default) =>
            new LineEnumerator(tree, cancellationToken, enumeratorToken);
    }

    /// <summary>
    /// Lines are split a chunk at a time and handed out synchronously from a list; only an empty list awaits the
    /// next chunk. (A compiler-generated async iterator resumed its state machine once per line.)
    /// </summary>
    private sealed class LineEnumerator : IAsyncEnumerator<OutputLine>
    {
        private readonly ProcessTree _tree;
        private readonly CancellationTokenSource? _linked;
        private readonly CancellationToken _token;
        private readonly LineSplitter[] _splitters;
        private readonly List<OutputLine> _lines = [];
        private int _next;
        private bool _started;
        private bool _done;

        public LineEnumerator(ProcessTree tree, CancellationToken methodToken, CancellationToken enumeratorToken)
        {
            _tree = tree;
            if (methodToken.CanBeCanceled && enumeratorToken.CanBeCanceled && methodToken != enumeratorToken)
            {
                _linked = CancellationTokenSource.CreateLinkedTokenSource(methodToken, enumeratorToken);
                _token = _linked.Token;
            }
            else
            {
                _token = methodToken.CanBeCanceled ? methodToken : enumeratorToken;
            }

            var maxLine = Math.Max(1, tree._supervisor.Spec.Limits.MaxLineLength);
            _splitters = [new LineSplitter(OutputStream.StandardOutput, maxLine), new LineSplitter(OutputStream.StandardError, maxLine)];
        }

        public OutputLine Current { get; private set; }

        public ValueTask<bool> MoveNextAsync()
        {
            if (_next < _lines.Count)
            {
                Current = _lines[_next++];
                return new ValueTask<bool>(true);
            }

            return FillAsync();
        }

        private async ValueTask<bool> FillAsync()
        {
            if (!_started)
            {
                _started = true;
                _tree.ClaimReader();
            }

            var capture = _tree._supervisor.Capture;
            while (true)
            {
                _lines.Clear();
                _next = 0;
                if (_done)
                    return false;
                if (capture is not null && await capture.ReadAsync(_token).ConfigureAwait(false) is { } chunk)
                {
                    _splitters[(int)chunk.Stream - 1].Push(chunk.Bytes.Span, _lines);
                }
                else
                {
                    foreach (var splitter in _splitters)
                        splitter.Flush(_lines);
                    _done = true;
                }

                if (_lines.Count > 0)
                {
                    Current = _lines[_next++];
                    return true;
                }
            }
        }

        public ValueTask DisposeAsync()
        {
            _linked?.Dispose();
            return default;
        }
    }

    /// <summary>
    /// Kills what is left of a tree that a previous process started and did not finish (after a crash), identified
    /// by its tree id and, in cgroup mode, its cgroup path. Never touches anything else.
    /// </summary>
    /// <param name="treeId">The tree's id (<see cref="ProcessOutcome.TreeId"/>).</param>
    /// <param name="cgroupPath">Its cgroup leaf (<see cref="CgroupPath"/>), if it had one.</param>
    /// <param name="timeout">How long to wait for what was found to be gone. Default: 5 s.</param>
    /// <param name="exclusiveUid">
    /// The uid the tree ran as, when it was exclusive to it (<see cref="ProcessUser.Exclusive"/>) and still is (no
    /// other tree was given it since): every process of that uid is killed too (<see cref="FoundBy.Uid"/>).
    /// </param>
    /// <exception cref="ArgumentException">Not a tree id, or an exclusive uid that is root's or Corral's own.</exception>
    public static async Task<IReadOnlyList<KilledProcess>> KillLeftoversAsync(string treeId, string? cgroupPath, TimeSpan? timeout = null, int? exclusiveUid = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(treeId);
        if (!Guid.TryParseExact(treeId, "N", out _))
            throw new ArgumentException("Not a Corral tree id.", nameof(treeId));
        if (exclusiveUid is { } uid && (uid <= 0 || (uint)uid == Interop.Libc.getuid() || (uint)uid == Interop.Libc.geteuid()))
            throw new ArgumentException($"uid {uid} cannot be exclusive to a tree.", nameof(exclusiveUid));
        var log = new KillLog();
        var wait = timeout ?? TimeSpan.FromSeconds(5);

        if (cgroupPath is not null && Path.GetFileName(cgroupPath) == treeId && Directory.Exists(cgroupPath)
            && Path.GetFileName(Path.GetDirectoryName(cgroupPath)) == "corral" && CgroupHost.Instance is { } host)
        {
            var leaf = new CgroupLeaf(cgroupPath, "/" + Path.GetRelativePath(host.MountPoint, cgroupPath));
            var tree = new CgroupTree(leaf);
            await tree.KillAllAsync(log).ConfigureAwait(false);
            await tree.WaitEmptyAsync(wait).ConfigureAwait(false);
            tree.Release();
        }

        // The session id may have been recycled since the crash: only the exact environment tag (and the exclusive
        // uid, which the caller vouches for) are trusted. No PID window survives a crash: every process is a candidate.
        var tag = new SessionTree(new TreeCriteria(null, SpawnRequest.TreeIdVariable + "=" + treeId, [], ExclusiveUid: exclusiveUid));
        await tag.KillAllAsync(log).ConfigureAwait(false);
        await tag.WaitEmptyAsync(wait).ConfigureAwait(false);
        return log.Snapshot();
    }

    /// <summary>Cancels the tree if it is still running and waits for it to finish.</summary>
    public async ValueTask DisposeAsync()
    {
        if (!Completion.IsCompleted)
            Cancel();
        await Completion.ConfigureAwait(false);
    }
}
