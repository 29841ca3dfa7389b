using Corral.Processes;
using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>
/// Reads a journal from the start, record by record, with one small buffer whatever the size of the task's output:
/// event data and line bytes are not loaded, only located (<see cref="ReadData"/> reads them piecewise).
/// </summary>
internal sealed class JournalReader : IDisposable
{
    private const int BufferSize = 16 * 1024;
    private const int AheadSize = 32 * 1024;

    private readonly SafeFileHandle? _journal;
    private readonly SafeFileHandle?[] _streams = new SafeFileHandle?[2];
    private readonly string _directory;
    private readonly byte[] _buffer = new byte[BufferSize];
    private long _bufferStart;
    private int _bufferLength;
    private readonly long[] _streamOffsets = new long[2];
    private readonly byte[]?[] _ahead = new byte[]?[2];
    private readonly long[] _aheadStart = new long[2];
    private readonly int[] _aheadLength = new int[2];

    /// <summary>Opens the journal in <paramref name="directory"/>; a missing one reads as empty.</summary>
    public JournalReader(string directory)
    {
        _directory = directory;
        _journal = TryOpen(Path.Combine(directory, JournalFormat.FileName));
        Position = JournalFormat.Header.Length;
        if (_journal is not null)
        {
            int n = RandomAccess.Read(_journal, _buffer.AsSpan(0, JournalFormat.Header.Length), 0);
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

    /// <summary>The journal's length on disk now: everything a finished task's writer committed.</summary>
    public long FileLength => _journal is null ? 0 : RandomAccess.GetLength(_journal);

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
            case JournalFormat.LineTag:
            {
                int n = JournalFormat.ReadVarint(head[2..], out ulong length);
                if (n == 0)
                    return false;
                var flags = (LineFlags)head[1];
                int stream = (flags & LineFlags.Stderr) != 0 ? 1 : 0;
                long id = (flags & LineFlags.Event) != 0 ? ++EventCount : 0;
                entry = new JournalEntry(id, null, flags, _streamOffsets[stream], (long)length);
                _streamOffsets[stream] += (long)length;
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
                long id = head[0] == JournalFormat.EventTag ? ++EventCount : 0;
                entry = new JournalEntry(id, name, LineFlags.None, dataStart, (long)length);
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
    /// Lines are read through a read-ahead window per stream: replaying a flood of short lines costs one read per
    /// 64 KiB, not one per line.
    /// </summary>
    public int ReadData(in JournalEntry entry, long skip, Span<byte> buffer)
    {
        long remaining = entry.Length - skip;
        if (remaining <= 0)
            return 0;
        if (buffer.Length > remaining)
            buffer = buffer[..(int)remaining];
        if (!entry.IsLine)
            return _journal is null ? 0 : RandomAccess.Read(_journal, buffer, entry.Offset + skip);
        int i = entry.Stream == OutputStream.StandardError ? 1 : 0;
        if (StreamFile(entry.Stream) is not { } file)
            return 0;
        long at = entry.Offset + skip;
        var ahead = _ahead[i] ??= new byte[AheadSize];
        if (at < _aheadStart[i] || at + buffer.Length > _aheadStart[i] + _aheadLength[i])
        {
            if (buffer.Length >= AheadSize / 2)
                return RandomAccess.Read(file, buffer, at);
            _aheadStart[i] = at;
            _aheadLength[i] = RandomAccess.Read(file, ahead, at);
        }

        int from = (int)(at - _aheadStart[i]);
        int n = Math.Min(buffer.Length, _aheadLength[i] - from);
        if (n <= 0)
            return 0;
        ahead.AsSpan(from, n).CopyTo(buffer);
        return n;
    }

    public void Dispose()
    {
        _journal?.Dispose();
        foreach (var s in _streams)
            s?.Dispose();
    }

    private SafeFileHandle? StreamFile(OutputStream stream)
    {
        int i = stream == OutputStream.StandardError ? 1 : 0;
        return _streams[i] ??= TryOpen(Path.Combine(_directory, JournalFormat.StreamFileName(stream)));
    }

    private ReadOnlySpan<byte> Peek(long wanted)
    {
        long end = _bufferStart + _bufferLength;
        if (Position < _bufferStart || Position + wanted > end)
        {
            _bufferStart = Position;
            _bufferLength = RandomAccess.Read(_journal!, _buffer, Position);
        }

        int from = (int)(Position - _bufferStart);
        return _buffer.AsSpan(from, (int)Math.Min(wanted, _bufferLength - from));
    }

    private static SafeFileHandle? TryOpen(string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
