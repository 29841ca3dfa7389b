namespace Corral.Processes.Internal.Output;

/// <summary>
/// Holds captured chunks of both streams, in arrival order, within a per-stream byte limit and overflow policy.
/// Read concurrently by <see cref="ProcessTree.ReadLinesAsync"/>, or all at once after completion.
/// </summary>
internal sealed class CaptureBuffer : IOutputSink
{
    private const int MaxChunk = 64 * 1024;

    private readonly Lock _gate = new();
    private readonly PerStream _stdout;
    private readonly PerStream _stderr;
    private readonly OutputLimits _limits;
    private long _sequence;
    private TaskCompletionSource? _dataAvailable;
    private TaskCompletionSource? _spaceAvailable;

    public CaptureBuffer(OutputLimits limits, bool captureStdout, bool captureStderr)
    {
        _limits = limits;
        _stdout = new PerStream { Completed = !captureStdout };
        _stderr = new PerStream { Completed = !captureStderr };
    }

    public bool StdoutTruncated => _stdout.Truncated;

    public bool StderrTruncated => _stderr.Truncated;

    private PerStream For(OutputStream stream) => stream == OutputStream.StandardOutput ? _stdout : _stderr;

    public async ValueTask WriteAsync(OutputStream stream, ReadOnlyMemory<byte> data)
    {
        var s = For(stream);
        while (true)
        {
            Task? wait = null;
            lock (_gate)
            {
                long room = _limits.MaxBufferedBytes - s.Unread;
                if (data.Length <= room || _limits.Overflow != OverflowPolicy.Wait || s.Unread == 0)
                {
                    Append(s, stream, data);
                    return;
                }

                _spaceAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _spaceAvailable.Task;
            }

            await wait.ConfigureAwait(false);
        }
    }

    private void Append(PerStream s, OutputStream stream, ReadOnlyMemory<byte> data)
    {
        long room = _limits.MaxBufferedBytes - s.Unread;
        if (data.Length > room)
        {
            if (_limits.Overflow == OverflowPolicy.DropOldest)
            {
                // Keep the newest bytes: drop whole old chunks, then the head of this one if it alone is too big.
                if (data.Length > _limits.MaxBufferedBytes)
                    data = data[^(int)_limits.MaxBufferedBytes..];
                while (s.Unread + data.Length > _limits.MaxBufferedBytes && s.Chunks.TryDequeue(out var old))
                    s.Unread -= old.Data.Length;
                s.Truncated = true;
            }
            else if (_limits.Overflow == OverflowPolicy.DropNewest)
            {
                s.Truncated = true;
                if (room <= 0)
                    return;
                data = data[..(int)room];
            }
        }

        s.Unread += data.Length;

        // The pump reuses its buffer, so the bytes are copied; in pieces of at most 64 KiB so that a 1 MiB read
        // (grown pipe) never lands on the large object heap, and without zeroing memory about to be overwritten.
        while (!data.IsEmpty)
        {
            int take = Math.Min(data.Length, MaxChunk);
            byte[] copy = GC.AllocateUninitializedArray<byte>(take);
            data.Span[..take].CopyTo(copy);
            s.Chunks.Enqueue(new Chunk(_sequence++, copy));
            data = data[take..];
        }

        Interlocked.Exchange(ref _dataAvailable, null)?.TrySetResult();
    }

    public void Complete(OutputStream stream)
    {
        lock (_gate)
        {
            For(stream).Completed = true;
            Interlocked.Exchange(ref _dataAvailable, null)?.TrySetResult();
        }
    }

    /// <summary>The next chunk of either stream in arrival order, or <c>null</c> when both streams are complete and empty.</summary>
    public async ValueTask<OutputChunk?> ReadAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task wait;
            lock (_gate)
            {
                bool hasOut = _stdout.Chunks.TryPeek(out var o);
                bool hasErr = _stderr.Chunks.TryPeek(out var e);
                if (hasOut || hasErr)
                {
                    bool takeOut = hasOut && (!hasErr || o.Sequence < e.Sequence);
                    var s = takeOut ? _stdout : _stderr;
                    var chunk = s.Chunks.Dequeue();
                    s.Unread -= chunk.Data.Length;
                    Interlocked.Exchange(ref _spaceAvailable, null)?.TrySetResult();
                    return new OutputChunk(takeOut ? OutputStream.StandardOutput : OutputStream.StandardError, chunk.Data);
                }

                if (_stdout.Completed && _stderr.Completed)
                    return null;
                _dataAvailable ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                wait = _dataAvailable.Task;
            }

            await wait.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Takes everything still buffered for one stream.</summary>
    public byte[] TakeAll(OutputStream stream)
    {
        lock (_gate)
        {
            var s = For(stream);
            if (s.Chunks.Count == 1 && s.Chunks.Peek().Data.Length == s.Unread)
            {
                // One chunk holds everything: hand it over instead of copying it again.
                s.Unread = 0;
                Interlocked.Exchange(ref _spaceAvailable, null)?.TrySetResult();
                return s.Chunks.Dequeue().Data;
            }

            var all = GC.AllocateUninitializedArray<byte>((int)s.Unread);
            int offset = 0;
            while (s.Chunks.TryDequeue(out var chunk))
            {
                chunk.Data.CopyTo(all, offset);
                offset += chunk.Data.Length;
            }

            s.Unread = 0;
            Interlocked.Exchange(ref _spaceAvailable, null)?.TrySetResult();
            return all;
        }
    }

    private readonly record struct Chunk(long Sequence, byte[] Data);

    private sealed class PerStream
    {
        public readonly Queue<Chunk> Chunks = new();
        public long Unread;
        public bool Truncated;
        public bool Completed;
    }
}
