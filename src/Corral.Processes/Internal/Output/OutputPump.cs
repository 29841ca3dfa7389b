using System.Buffers;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Output;

/// <summary>
/// Reads one non-blocking pipe into a sink until EOF or until told to stop. Supports the post-exit handshake:
/// <see cref="DrainAvailableAsync"/> completes once a read after the request has returned EAGAIN or EOF, which
/// means every byte written before the request is in the sink.
/// </summary>
/// <remarks>
/// The read buffer is rented only while the pipe has data and returned before waiting, so an idle tree holds no
/// buffer. A pipe that a read finds full is grown once to <see cref="PipeBudget.TargetSize"/> (F_SETPIPE_SZ), within
/// a process-wide budget, so a fast writer is read in a few large reads instead of one wake-up per 64 KiB.
/// </remarks>
internal sealed class OutputPump
{

    private readonly OutputStream _stream;
    private readonly IOutputSink _sink;
    private readonly PollRegistration _poll;
    private readonly Lock _gate = new();
    private int _fd;
    private TaskCompletionSource? _drainRequest;
    private TaskCompletionSource _wake = NewSignal();
    private bool _stopRequested;
    private bool _finished;
    private IOutputSink _target;
    private long _bytes;
    private bool _reachedEof;
    private int _pipeSize;
    private bool _growAttempted;
    private bool _grown;

    public OutputPump(int fd, OutputStream stream, IOutputSink sink)
    {
        _fd = fd;
        _stream = stream;
        _sink = sink;
        _target = sink;
        PipeLink = PipeLinkOf(fd);
        int size = Libc.fcntl(fd, Libc.F_GETPIPE_SZ, 0);
        _pipeSize = size > 0 ? size : 64 * 1024;
        _poll = PollLoop.Shared.Register(fd);

        // Runs inline up to its first wait (arming epoll), so starting a pump costs no thread-pool hop.
        Completion = RunAsync();
    }

    /// <summary>"pipe:[inode]" of this pipe, as readlink shows it for every holder of either end.</summary>
    public string? PipeLink { get; }

    public int Descriptor => _fd;

    /// <summary>
    /// Whether no process holds the write end any more: EOF was read, or poll(2) reports POLLHUP on the read end
    /// (which it does exactly when the pipe has no writers). Does not read, so it never takes bytes from the pump.
    /// </summary>
    public unsafe bool WritersGone()
    {
        if (ReachedEof)
            return true;
        lock (_gate)
        {
            if (_fd < 0)
                return ReachedEof;
            var p = new Libc.PollFd { Fd = _fd, Events = Libc.POLLIN };
            return Libc.poll(&p, 1, 0) == 1 && (p.Revents & Libc.POLLHUP) != 0;
        }
    }

    public long BytesRead => Interlocked.Read(ref _bytes);

    /// <summary>The pipe returned EOF: no process holds its write end any more.</summary>
    public bool ReachedEof
    {
        get => Volatile.Read(ref _reachedEof);
        private set => Volatile.Write(ref _reachedEof, value);
    }

    /// <summary>Completes when the pump has stopped (EOF, stop, or sink failure).</summary>
    public Task Completion { get; }

    /// <summary>The exception the sink threw, if it failed; the pipe was still drained (and the rest discarded).</summary>
    public Exception? SinkError { get; private set; }

    /// <summary><see cref="SinkError"/> as the outcome reports it: the stream, the exception's type and its message.</summary>
    public string? SinkFailure => SinkError is { } e
        ? $"{(_stream == OutputStream.StandardOutput ? "stdout" : "stderr")}: {e.GetType().Name}: {e.Message}"
        : null;

    public Task DrainAvailableAsync()
    {
        lock (_gate)
        {
            // Checked under the lock the loop's exit takes: a request can never be left behind by a finished pump.
            if (_finished)
                return Task.CompletedTask;
            _drainRequest ??= NewSignal();
            _wake.TrySetResult();
            return _drainRequest.Task;
        }
    }

    /// <summary>Takes what the pipe holds right now without waiting, then stops reading.</summary>
    public Task StopAsync()
    {
        lock (_gate)
        {
            _stopRequested = true;
            _wake.TrySetResult();
        }

        return Completion;
    }

    private async Task RunAsync()
    {
        byte[]? buffer = null;
        TaskCompletionSource? carried = null;
        try
        {
            // A new pipe is empty: wait for data (or a drain or stop request) before the first read. Never reads
            // or writes to the sink on the thread that starts the tree.
            await Task.WhenAny(_poll.WaitAsync(Libc.EPOLLIN | Libc.EPOLLRDHUP), _wake.Task).ConfigureAwait(false);
            while (true)
            {
                Task wake;
                lock (_gate)
                {
                    if (carried is null && _drainRequest is not null)
                    {
                        carried = _drainRequest;
                        _drainRequest = null;
                    }

                    if (_wake.Task.IsCompleted)
                        _wake = NewSignal();
                    wake = _wake.Task;
                }

                buffer ??= ArrayPool<byte>.Shared.Rent(_pipeSize);
                nint n = Io.Fd.Read(_fd, buffer.AsSpan(0, Math.Min(buffer.Length, _pipeSize)), out int errno);
                if (n > 0)
                {
                    Interlocked.Add(ref _bytes, n);
                    try
                    {
                        await _target.WriteAsync(_stream, buffer.AsMemory(0, (int)n)).ConfigureAwait(false);
                    }
                    catch (Exception e)
                    {
                        // A failing consumer must not stop the draining: the child would block on a full pipe.
                        SinkError ??= e;
                        _target = DiscardSink.Instance;
                    }

                    if (n >= _pipeSize && !_growAttempted && TryGrow())
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = null;
                    }

                    continue;
                }

                if (n == 0)
                {
                    ReachedEof = true;
                    break;
                }

                if (errno == Libc.EINTR)
                    continue;
                if (errno != Libc.EAGAIN)
                    break;

                // Nothing more right now: whoever asked for a drain has everything written before they asked.
                carried?.TrySetResult();
                carried = null;
                lock (_gate)
                {
                    if (_stopRequested)
                        break;
                    if (_drainRequest is not null)
                        continue;
                }

                // Idle: hold no buffer while waiting.
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = null;
                await Task.WhenAny(_poll.WaitAsync(Libc.EPOLLIN | Libc.EPOLLRDHUP), wake).ConfigureAwait(false);
            }
        }
        finally
        {
            if (buffer is not null)
                ArrayPool<byte>.Shared.Return(buffer);
            if (_grown)
                PipeBudget.Release();
            _poll.Dispose();
            lock (_gate)
                Io.Fd.Close(ref _fd);
            _sink.Complete(_stream);
            carried?.TrySetResult();
            lock (_gate)
            {
                _finished = true;
                _drainRequest?.TrySetResult();
            }
        }
    }

    /// <summary>A read found the pipe full: the writer is faster than one pipe per wake-up. Grow it once, if the budget allows.</summary>
    private bool TryGrow()
    {
        _growAttempted = true;
        if (PipeBudget.TargetSize <= _pipeSize || !PipeBudget.TryAcquire())
            return false;
        int size = Libc.fcntl(_fd, Libc.F_SETPIPE_SZ, PipeBudget.TargetSize);
        if (size <= _pipeSize)
        {
            PipeBudget.Release();
            return false;
        }

        _grown = true;
        _pipeSize = size;
        return true;
    }

    /// <summary>What readlink of /proc/PID/fd/N shows for either end of this pipe, from its inode (no /proc lookup).</summary>
    private static unsafe string? PipeLinkOf(int fd)
    {
        byte* stat = stackalloc byte[Libc.StatBufferSize];
        return Libc.fstat(fd, stat) == 0 ? $"pipe:[{*(ulong*)(stat + Libc.StatInodeOffset)}]" : null;
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
