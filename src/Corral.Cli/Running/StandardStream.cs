using System.Runtime.InteropServices;

namespace Corral.Cli.Running;

/// <summary>
/// corral's own stdout or stderr as the destination of the child's output: raw write(2) on the descriptor.
/// </summary>
/// <remarks>
/// Not <see cref="Console.OpenStandardOutput()"/>: it silently drops EPIPE, so <c>corral run -- yes | head</c>
/// would never end. Not a <see cref="FileStream"/>: it keeps its own offset, so with <c>&gt; log 2&gt;&amp;1</c> the
/// two streams would overwrite each other instead of sharing the file offset. When the reader goes away, the
/// failure is reported once through <paramref name="onBroken"/> and later bytes are dropped, so the tree is still
/// drained and reaped normally.
/// </remarks>
internal sealed unsafe partial class StandardStream(int fd, Action onBroken) : Stream
{
    private const int EINTR = 4;
    private const int EAGAIN = 11;
    private const short POLLOUT = 0x4;

    private int _broken;

    public static StandardStream Output(Action onBroken) => new(1, onBroken);

    public static StandardStream Error(Action onBroken) => new(2, onBroken);

    public bool IsBroken => Volatile.Read(ref _broken) != 0;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty && !IsBroken)
        {
            nint written;
            fixed (byte* p = buffer)
                written = write(fd, p, (nuint)buffer.Length);
            if (written >= 0)
            {
                buffer = buffer[(int)written..];
                continue;
            }

            int errno = Marshal.GetLastPInvokeError();
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
            {
                // Inherited a non-blocking descriptor: wait for room rather than drop bytes.
                var request = new PollFd { Fd = fd, Events = POLLOUT };
                poll(&request, 1, -1);
                continue;
            }

            // EPIPE (the reader is gone), EBADF (closed), EIO, ENOSPC...: nowhere left to put the output.
            Break();
        }
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    private void Break()
    {
        if (Interlocked.Exchange(ref _broken, 1) == 0)
            onBroken();
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint write(int fd, byte* buffer, nuint count);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int poll(PollFd* fds, nuint count, int timeout);
}
