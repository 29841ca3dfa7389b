using System.Buffers;
using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>
/// Appends to a task's journal. Records are staged in memory and written by <see cref="Commit"/> in one write (group
/// commit: one per chunk of output read, not one per line). Readers see what is committed, and are woken by
/// <see cref="Changed"/>. Nothing is flushed to disk here: the <see cref="IJournalStore"/> does that for all journals
/// every few seconds, and <see cref="Sync"/> for this one when it must be durable now (a crash of the server loses
/// nothing the kernel has; a crash of the machine, at most the last interval). Thread-safe.
/// </summary>
internal sealed class JournalWriter : IDisposable
{
    private readonly Lock _gate = new();
    private readonly IJournalSink _journal;
    private readonly SemaphoreSlim _appending = new(1, 1); // one append of an async sink at a time
    private readonly ArrayBufferWriter<byte> _staged = new(4096);
    private int _stagedEvents;
    private ChunkCounts _stagedCounts; // what the staged records hold of the output, for a sink that keeps it beside them
    private long _discards; // how many times what was staged was dropped (an async commit then leaves the staged records alone)
    private long _committed;
    private long _eventCount;
    private bool _dirty;
    private bool _closed;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Action? _onCommit;

    internal JournalWriter(string directory, IJournalSink journal, long committed, long eventCount, Action? onCommit)
    {
        _onCommit = onCommit;
        Directory = directory;
        _journal = journal;
        _committed = committed;
        _eventCount = eventCount;
    }

    public string Directory { get; }

    /// <summary>Secret values to mask in every event and note written from now on.</summary>
    public Secrets.SecretMask? Mask { get; set; }

    /// <summary>Length of the journal that readers may read.</summary>
    public long Committed => Volatile.Read(ref _committed);

    /// <summary>Committed events (the SSE id of the last one).</summary>
    public long EventCount => Volatile.Read(ref _eventCount);

    /// <summary>Completes at the next commit, or when the writer is closed.</summary>
    public Task Changed
    {
        get
        {
            lock (_gate)
                return _changed.Task;
        }
    }

    /// <summary>Whether the writer is closed: no more records will come.</summary>
    public bool IsClosed => Volatile.Read(ref _closed);

    /// <summary>Creates the directory (<paramref name="mode"/>, 0700 by default) and a new, empty journal file in it; <paramref name="onCommit"/> hears of every commit.</summary>
    public static JournalWriter Create(string directory, UnixFileMode mode = Files.PrivateDirectory, Action? onCommit = null)
    {
        if (!System.IO.Directory.Exists(directory))
        {
            Files.CreatePrivateDirectory(Path.GetDirectoryName(directory)!);
            System.IO.Directory.CreateDirectory(directory, mode); // 0700 and 0711 have no bit the umask could take away
        }

        var sink = new FileJournalStore.FileSink(Files.OpenPrivate(Path.Combine(directory, JournalFormat.FileName), FileMode.CreateNew));
        sink.Append(JournalFormat.Header, 0);
        return new JournalWriter(directory, sink, JournalFormat.Header.Length, 0, onCommit);
    }

    /// <summary>
    /// Opens an existing journal file to append to it (a task queued before a restart, or one whose end is written after a
    /// crash): reads it to its last whole record and cuts off a torn tail. A missing or unreadable journal starts anew.
    /// </summary>
    public static JournalWriter Open(string directory, UnixFileMode mode = Files.PrivateDirectory, Action? onCommit = null)
    {
        string path = Path.Combine(directory, JournalFormat.FileName);
        if (!File.Exists(path))
            return Create(directory, mode, onCommit);
        var (end, events) = Scan(new JournalReader(directory));
        var sink = new FileJournalStore.FileSink(Files.OpenPrivate(path, FileMode.Open));
        sink.Truncate(end);
        if (end == JournalFormat.Header.Length)
            sink.Append(JournalFormat.Header, 0); // empty, or not a journal at all: a fresh one
        return new JournalWriter(directory, sink, end, events, onCommit);
    }

    /// <summary>Where the last whole record of a journal ends (the header's end for an empty or foreign one), and its events.</summary>
    internal static (long End, long Events) Scan(JournalReader reader)
    {
        using (reader)
        {
            long limit = reader.FileLength;
            while (reader.TryRead(limit, out _))
            {
            }

            return (reader.Position, reader.EventCount);
        }
    }

    /// <summary>Stages a chunk of output; the line records staged after it may cover its bytes.</summary>
    public void WriteOutput(OutputStream stream, ReadOnlySpan<byte> bytes)
    {
        if (bytes.IsEmpty)
            return;
        lock (_gate)
        {
            JournalFormat.WriteOutput(_staged, stream, bytes);
            _stagedCounts = stream == OutputStream.StandardError
                ? _stagedCounts with { Stderr = _stagedCounts.Stderr + bytes.Length }
                : _stagedCounts with { Stdout = _stagedCounts.Stdout + bytes.Length };
        }
    }

    /// <summary>Stages a line record: the next <paramref name="length"/> bytes of its stream.</summary>
    public void AddLine(LineFlags flags, long length)
    {
        lock (_gate)
        {
            JournalFormat.WriteLine(_staged, flags, length);
            if ((flags & LineFlags.Event) != 0)
                _stagedEvents++;
        }
    }

    /// <summary>Stages an event with its JSON data.</summary>
    public void AddEvent(string name, ReadOnlySpan<byte> json)
    {
        lock (_gate)
        {
            JournalFormat.WriteEvent(_staged, name, json);
            _stagedEvents++;
        }
    }

    /// <summary>Stages an event whose data is <paramref name="data"/> in the API's JSON.</summary>
    public void AddEvent(string name, object data) => AddEvent(name, Serialize(data));

    /// <summary>Stages a note of the server's own (not an event: never sent to clients).</summary>
    public void AddMeta(string name, object data)
    {
        byte[] json = Serialize(data);
        lock (_gate)
        {
            JournalFormat.WriteMeta(_staged, name, json);
            if (data is DropNote dropped)
                _stagedCounts = _stagedCounts with { Dropped = dropped };
        }
    }

    /// <summary>Writes what is staged (one write) and wakes the readers. On failure, nothing of it is visible and it stays staged.</summary>
    public void Commit()
    {
        if (_journal is IAsyncJournalSink)
        {
            CommitAsync().AsTask().GetAwaiter().GetResult();
            return;
        }

        TaskCompletionSource changed;
        lock (_gate)
        {
            if (_staged.WrittenCount == 0 || _closed)
                return;
            try
            {
                _journal.Append(_staged.WrittenSpan, _committed);
            }
            catch (IOException)
            {
                // A short write (disk full) must not leave part of a record for the next write to follow.
                try
                {
                    _journal.Truncate(_committed);
                }
                catch (IOException)
                {
                }

                throw;
            }

            changed = CommittedLocked(_committed + _staged.WrittenCount, _stagedEvents);
            ClearStagedLocked();
        }

        Wake(changed);
    }

    /// <summary>
    /// <see cref="Commit"/>, awaiting a sink that may wait (a database) instead of blocking a thread on it: what is
    /// staged meanwhile stays staged for the next commit. For a file, the same as <see cref="Commit"/>.
    /// </summary>
    public async ValueTask CommitAsync()
    {
        if (_journal is not IAsyncJournalSink sink)
        {
            Commit();
            return;
        }

        await _appending.WaitAsync().ConfigureAwait(false);
        try
        {
            byte[] bytes;
            int events;
            long at;
            ChunkCounts counts;
            long discards;
            lock (_gate)
            {
                if (_staged.WrittenCount == 0 || _closed)
                    return;
                (bytes, events, at, counts, discards) = (_staged.WrittenSpan.ToArray(), _stagedEvents, _committed, _stagedCounts, _discards);
            }

            await sink.AppendAsync(bytes, at, counts).ConfigureAwait(false); // whole chunks: a failure leaves nothing to cut; the sink keeps the array
            TaskCompletionSource changed;
            lock (_gate)
            {
                if (_discards == discards)
                {
                    // What was staged during the append stays staged.
                    byte[] later = _staged.WrittenCount > bytes.Length ? _staged.WrittenSpan[bytes.Length..].ToArray() : [];
                    _staged.Clear();
                    _staged.Write(later);
                    _stagedEvents = Math.Max(0, _stagedEvents - events);
                    _stagedCounts = new ChunkCounts(_stagedCounts.Stdout - counts.Stdout, _stagedCounts.Stderr - counts.Stderr,
                        ReferenceEquals(_stagedCounts.Dropped, counts.Dropped) ? null : _stagedCounts.Dropped);
                }

                changed = CommittedLocked(at + bytes.Length, events);
            }

            Wake(changed);
        }
        finally
        {
            _appending.Release();
        }
    }

    /// <summary>Makes the journal up to <paramref name="end"/> readable, with <paramref name="events"/> more events; the signal to complete once the lock is let go.</summary>
    private TaskCompletionSource CommittedLocked(long end, int events)
    {
        Volatile.Write(ref _committed, end);
        Volatile.Write(ref _eventCount, _eventCount + events);
        _dirty = true;
        var changed = _changed;
        if (!_closed)
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously); // once closed, the one Dispose completed stays
        return changed;
    }

    /// <summary>Wakes the readers of a commit.</summary>
    private void Wake(TaskCompletionSource changed)
    {
        _onCommit?.Invoke();
        changed.TrySetResult();
    }

    /// <summary>Drops what is staged and not committed (output that could not be stored, with its lines).</summary>
    public void DiscardStaged()
    {
        lock (_gate)
        {
            ClearStagedLocked();
            _discards++;
        }
    }

    /// <summary>Nothing staged any more (under <see cref="_gate"/>).</summary>
    private void ClearStagedLocked()
    {
        _staged.Clear();
        _stagedEvents = 0;
        _stagedCounts = default;
    }

    /// <summary>Makes everything committed durable (fdatasync), if anything was written since the last time.</summary>
    public void Sync()
    {
        lock (_gate)
        {
            if (!_dirty || _closed)
                return;
            _journal.Sync();
            _dirty = false;
        }
    }

    /// <summary>Raised once, when the writer is closed.</summary>
    public event Action? Closed;

    /// <summary>Closes the journal; readers then read to the end and stop.</summary>
    public void Dispose()
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            if (_closed)
                return;
            _closed = true;
            _journal.Dispose();
            changed = _changed;
        }

        Closed?.Invoke();
        changed.TrySetResult();
    }

    private byte[] Serialize(object data)
    {
        byte[] json = data is TaskRecord record ? ApiJson.Utf8(record) : JsonSerializer.SerializeToUtf8Bytes(data, data.GetType(), ApiJson.Options);
        return Mask is { } mask ? mask.Apply(json) : json;
    }
}
