using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Output;

/// <summary>The write end of the child's stdin pipe: non-blocking writes, waiting for room on the poll thread.</summary>
internal sealed class InputPipeStream : Stream
{
    private readonly PollRegistration _poll;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Lock _fdGate = new();
    private int _fd;

    public InputPipeStream(int fd)
    {
        _fd = fd;
        _poll = PollLoop.Shared.Register(fd);
    }

    public bool IsClosed => Volatile.Read(ref _fd) < 0;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => !IsClosed;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        await _writeLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            while (!buffer.IsEmpty)
            {
                nint n;
                int errno;
                // The check and the write under the lock Dispose takes: a descriptor closed in between could already
                // be another file's, and the bytes would land there.
                lock (_fdGate)
                {
                    ObjectDisposedException.ThrowIf(_fd < 0, this);
                    n = Fd.Write(_fd, buffer.Span, out errno);
                }

                if (n >= 0)
                {
                    buffer = buffer[(int)n..];
                    continue;
                }

                if (errno == Libc.EINTR)
                    continue;
                if (errno != Libc.EAGAIN)
                    throw new IOException($"Writing to the child's standard input failed: {Libc.Describe(errno)}", errno);
                uint events = await _poll.WaitAsync(Libc.EPOLLOUT).WaitAsync(cancellationToken).ConfigureAwait(false);
                if ((events & Libc.EPOLLERR) != 0 && (events & Libc.EPOLLOUT) == 0)
                    throw new IOException("The child closed its standard input.", Libc.EPIPE);
            }
        }
        finally
        {
            _writeLock.Release();
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override void Flush() { }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        int fd;
        lock (_fdGate)
        {
            fd = _fd;
            _fd = -1;
        }

        if (fd >= 0)
        {
            _poll.Dispose();
            Libc.close(fd);
        }

        base.Dispose(disposing);
    }
}
