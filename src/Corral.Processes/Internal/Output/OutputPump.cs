using System.Buffers;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Output;

/// <summary>
/// Reads one non-blocking pipe into a sink until EOF or until told to stop. Supports the post-exit handshake:
/// <see cref="DrainAvailableAsync"/> completes once a read after the request has returned EAGAIN or EOF, which
/// means every byte written before the request is in the sink.
/// </summary>
internal sealed class OutputPump
{
    private const int BufferSize = 128 * 1024;

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

    public OutputPump(int fd, OutputStream stream, IOutputSink sink)
    {
        _fd = fd;
        _stream = stream;
        _sink = sink;
        _target = sink;
        PipeLink = Io.Fd.ReadLink($"/proc/self/fd/{fd}");
        _poll = PollLoop.Shared.Register(fd);
        Completion = Task.Run(RunAsync);
    }

    /// <summary>"pipe:[inode]" of this pipe, as readlink shows it for every holder of either end.</summary>
    public string? PipeLink { get; }

    public int Descriptor => _fd;

    public long BytesRead => Interlocked.Read(ref _bytes);

    public bool ReachedEof { get; private set; }

    /// <summary>Completes when the pump has stopped (EOF, stop, or sink failure).</summary>
    public Task Completion { get; }

    /// <summary>The exception the sink threw, if it failed; the pipe was still drained (and the rest discarded).</summary>
    public Exception? SinkError { get; private set; }

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
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        TaskCompletionSource? carried = null;
        try
        {
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

                nint n = Io.Fd.Read(_fd, buffer, out int errno);
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

                await Task.WhenAny(_poll.WaitAsync(Libc.EPOLLIN | Libc.EPOLLRDHUP), wake).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            _poll.Dispose();
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

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
