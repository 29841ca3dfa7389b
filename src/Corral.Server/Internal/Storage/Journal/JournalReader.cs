using Corral.Processes;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>
/// Reads a journal from the start, record by record, with small buffers whatever the size of the task's output:
/// event data and line bytes are not loaded, only located (<see cref="ReadData"/> reads them piecewise). A line's
/// bytes are found in the output records read before it; the reader remembers only those a line still to come can
/// need, so its memory does not grow with the journal.
/// </summary>
internal sealed class JournalReader : IDisposable
{
    private const int BufferSize = 8 * 1024;
    private const int AheadSize = 16 * 1024;

    private readonly IJournalSource? _journal;
    private readonly byte[] _buffer = new byte[BufferSize];
    private long _bufferStart;
    private int _bufferLength;
    private readonly byte[] _ahead = new byte[AheadSize];
    private long _aheadStart = -1;
    private int _aheadLength;

    // Per stream: bytes of output so far, where the next line starts, and the output chunks that hold bytes at or after it.
    private readonly long[] _streamLength = new long[2];
    private readonly long[] _lineStart = new long[2];
    private readonly List<Segment>[] _segments = [[], []];

    /// <summary>Reads the journal file in <paramref name="directory"/>; a missing one reads as empty.</summary>
    public JournalReader(string directory) : this(FileJournalStore.OpenSource(directory))
    {
    }

    /// <summary>Reads <paramref name="source"/> (which it then owns); <c>null</c> reads as empty.</summary>
    public JournalReader(IJournalSource? source)
    {
        _journal = source;
        Position = JournalFormat.Header.Length;
        if (_journal is not null)
        {
            int n = _journal.Read(0, _buffer.AsSpan(0, JournalFormat.Header.Length));
            if (!JournalFormat.HasHeader(_buffer.AsSpan(0, n)))
            {
                _journal.Dispose();
                _journal = null;
            }
        }
    }

    /// <summary>Where the next record starts.</summary>
    public long Position { get; private set; }

    /// <summary>Events read so far (the SSE id of the last one).</summary>
    public long EventCount { get; private set; }

    /// <summary>The journal's length now (on disk, or in the database): everything a finished task's writer committed.</summary>
    public long FileLength => _journal?.Length ?? 0;

    /// <summary>Bytes of a stream's output read so far.</summary>
    public long StreamLength(OutputStream stream) => _streamLength[Index(stream)];

    /// <summary>Reads the next whole record that ends at or before <paramref name="limit"/>.</summary>
    public bool TryRead(long limit, out JournalEntry entry)
    {
        entry = default;
        if (_journal is null || Position >= limit)
            return false;
        var head = Peek(Math.Min(limit - Position, 2 + 255 + 10));
        if (head.Length < 2)
            return false;
        switch (head[0])
        {
            case JournalFormat.OutputTag:
            {
                int n = JournalFormat.ReadVarint(head[2..], out ulong length);
                long dataStart = Position + 2 + n;
                if (n == 0 || head[1] is not (1 or 2) || dataStart + (long)length > limit)
                    return false;
                int s = head[1] - 1;
                Forget(s);
                _segments[s].Add(new Segment(_streamLength[s], dataStart, (long)length));
                _streamLength[s] += (long)length;
                entry = new JournalEntry(EntryKind.Output, 0, null, s == 1 ? LineFlags.Stderr : LineFlags.None, dataStart, (long)length);
                Position = dataStart + (long)length;
                return true;
            }

            case JournalFormat.LineTag:
            {
                int n = JournalFormat.ReadVarint(head[2..], out ulong length);
                if (n == 0)
                    return false;
                var flags = (LineFlags)head[1];
                int s = (flags & LineFlags.Stderr) != 0 ? 1 : 0;
                long id = (flags & LineFlags.Event) != 0 ? ++EventCount : 0;
                entry = new JournalEntry(EntryKind.Line, id, null, flags, _lineStart[s], (long)length);
                _lineStart[s] += (long)length;
                Position += 2 + n;
                return true;
            }

            case JournalFormat.EventTag or JournalFormat.MetaTag:
            {
                int nameLength = head[1];
                if (head.Length < 2 + nameLength + 1)
                    return false;
                int n = JournalFormat.ReadVarint(head[(2 + nameLength)..], out ulong length);
                long dataStart = Position + 2 + nameLength + n;
                if (n == 0 || dataStart + (long)length > limit)
                    return false;
                string name = JournalFormat.Name(head.Slice(2, nameLength));
                bool isEvent = head[0] == JournalFormat.EventTag;
                entry = new JournalEntry(isEvent ? EntryKind.Event : EntryKind.Meta, isEvent ? ++EventCount : 0, name, LineFlags.None, dataStart, (long)length);
                Position = dataStart + (long)length;
                return true;
            }

            default:
                return false; // a torn tail (zeros after a crash): nothing more is readable
        }
    }

    /// <summary>An entry's data, whole (for small records: the final record, meta notes).</summary>
    public byte[] ReadAll(in JournalEntry entry)
    {
        byte[] data = new byte[entry.Length];
        int n = 0;
        while (n < data.Length && ReadData(entry, n, data.AsSpan(n)) is var got and > 0)
            n += got;
        return n == data.Length ? data : data[..n];
    }

    /// <summary>
    /// Reads up to <paramref name="buffer"/>'s length of an entry's bytes, from <paramref name="skip"/> bytes into it.
    /// A line's bytes are read from the output records that hold them (valid until the next <see cref="TryRead"/>).
    /// </summary>
    public int ReadData(in JournalEntry entry, long skip, Span<byte> buffer)
    {
        long remaining = entry.Length - skip;
        if (remaining <= 0 || _journal is null)
            return 0;
        if (buffer.Length > remaining)
            buffer = buffer[..(int)remaining];
        if (!entry.IsLine)
            return ReadAt(entry.Offset + skip, buffer);

        // Lines: from stream offsets to journal positions, a segment at a time.
        long at = entry.Offset + skip;
        int done = 0;
        foreach (var segment in _segments[Index(entry.Stream)])
        {
            if (done == buffer.Length)
                break;
            if (at + done >= segment.StreamStart + segment.Length)
                continue;
            if (at + done < segment.StreamStart)
                break;
            long within = at + done - segment.StreamStart;
            int take = (int)Math.Min(buffer.Length - done, segment.Length - within);
            int n = ReadAt(segment.JournalPosition + within, buffer.Slice(done, take));
            done += n;
            if (n < take)
                break;
        }

        return done;
    }

    public void Dispose() => _journal?.Dispose();

    /// <summary>Drops chunks that end before the next line starts: no line to come can need them.</summary>
    private void Forget(int stream)
    {
        var segments = _segments[stream];
        int drop = 0;
        while (drop < segments.Count && segments[drop].StreamStart + segments[drop].Length <= _lineStart[stream])
            drop++;
        if (drop > 0)
            segments.RemoveRange(0, drop);
    }

    /// <summary>Reads journal bytes through a read-ahead window: replaying a flood of short lines costs one read per 32 KiB.</summary>
    private int ReadAt(long position, Span<byte> buffer)
    {
        if (buffer.Length >= AheadSize / 2)
            return _journal!.Read(position, buffer);
        if (position < _aheadStart || position + buffer.Length > _aheadStart + _aheadLength)
        {
            _aheadStart = position;
            _aheadLength = _journal!.Read(position, _ahead);
        }

        int from = (int)(position - _aheadStart);
        int n = Math.Min(buffer.Length, _aheadLength - from);
        if (n <= 0)
            return 0;
        _ahead.AsSpan(from, n).CopyTo(buffer);
        return n;
    }

    private ReadOnlySpan<byte> Peek(long wanted)
    {
        long end = _bufferStart + _bufferLength;
        if (Position < _bufferStart || Position + wanted > end)
        {
            _bufferStart = Position;
            _bufferLength = _journal!.Read(Position, _buffer);
        }

        int from = (int)(Position - _bufferStart);
        return _buffer.AsSpan(from, (int)Math.Min(wanted, _bufferLength - from));
    }

    private static int Index(OutputStream stream) => stream == OutputStream.StandardError ? 1 : 0;

    /// <summary>A chunk of one stream: where its bytes start in the stream, and in the journal.</summary>
    private readonly record struct Segment(long StreamStart, long JournalPosition, long Length);
}
