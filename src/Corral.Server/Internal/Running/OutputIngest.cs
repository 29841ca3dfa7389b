using System.Buffers;
using Corral.Agents;
using Corral.Processes;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Running;

/// <summary>
/// Takes a task's output as the pipes deliver it: stores the bytes once, exactly (output records of the journal), frames them
/// into lines (a record of a few bytes each in the journal; lines longer than the limit are cut into flagged
/// fragments), hands the lines of a protocol agent to its parser and stages the events it finds. Stops storing at
/// the task's output cap or when the disk is full, and goes on parsing, so the agent's result is still read. One
/// instance per run, used by the run's reader only.
/// </summary>
internal sealed class OutputIngest
{
    private const int MaxStderrEvents = 1000;

    /// <summary>How often, at most, the count of dropped bytes is noted in the journal while output is being dropped.</summary>
    internal static readonly TimeSpan DropNoteInterval = TimeSpan.FromSeconds(1);

    private readonly JournalWriter _journal;
    private readonly IAgentRun _run;
    private readonly long _maxStoredBytes;
    private readonly Framer[] _framers;
    private readonly TailBuffer _tail;
    private readonly long[] _dropped = new long[2];
    private readonly Secrets.SecretMask.Pass[]? _masks;
    private readonly ArrayBufferWriter<byte>? _masked;
    private readonly TimeProvider _time;
    private int _stderrEvents;
    private long _notedDrops;
    private long? _notedAt;

    public OutputIngest(JournalWriter journal, IAgentRun run, long maxStoredBytes, Secrets.SecretMask? mask = null, TimeProvider? time = null)
    {
        _journal = journal;
        _time = time ?? TimeProvider.System;
        _run = run;
        _maxStoredBytes = maxStoredBytes;
        // A command's result is its stdout's tail: no larger than what the task may store.
        _tail = new TailBuffer((int)Math.Clamp(maxStoredBytes, 1, AgentRuns.TailLength));
        if (mask is not null)
        {
            // Secret values are replaced before anything is stored, parsed or sent.
            _masks = [mask.Start(), mask.Start()];
            _masked = new ArrayBufferWriter<byte>();
        }

        int maxLine = Math.Max(4, run.Spec.Limits.MaxLineLength);
        _framers = [new Framer(OutputStream.StandardOutput, maxLine, !run.LinesAreEvents), new Framer(OutputStream.StandardError, maxLine, !run.LinesAreEvents)];
    }

    /// <summary>Bytes stored in the stream files.</summary>
    public long StoredBytes { get; private set; }

    /// <summary>Bytes read but not stored (past the output cap, or after the disk filled up).</summary>
    public long DroppedBytes(OutputStream stream) => _dropped[Index(stream)];

    /// <summary>Whether storing stopped at the output cap.</summary>
    public bool Capped { get; private set; }

    /// <summary>The write that failed because the disk is full; storing stopped then.</summary>
    public Exception? StorageFailure { get; private set; }

    /// <summary>The last bytes of stdout (all of them, stored or not).</summary>
    public ReadOnlySpan<byte> StdoutTail => _tail.Contents;

    /// <summary>Whether another node took the task over (its journal refused a write): nothing more of it may be written here.</summary>
    public bool Fenced { get; private set; }

    private bool Storing => !Capped && StorageFailure is null && !Fenced;

    /// <summary>Takes one chunk as read from a pipe.</summary>
    public void Write(OutputStream stream, ReadOnlySpan<byte> chunk)
    {
        if (_masks is null)
        {
            Take(stream, chunk);
            return;
        }

        _masked!.Clear();
        _masks[Index(stream)].Write(chunk, _masked);
        Take(stream, _masked.WrittenSpan);
    }

    private void Take(OutputStream stream, ReadOnlySpan<byte> chunk)
    {
        if (stream == OutputStream.StandardOutput)
            _tail.Append(chunk);
        int stored = 0;
        if (Storing)
        {
            stored = (int)Math.Min(chunk.Length, _maxStoredBytes - StoredBytes);
            _journal.WriteOutput(stream, chunk[..stored]);
            StoredBytes += stored;
        }

        _dropped[Index(stream)] += chunk.Length - stored;
        var framer = _framers[Index(stream)];
        framer.Push(chunk, stored, this);
        if (stored < chunk.Length && !framer.Sealed)
        {
            // Storing stopped inside this chunk: close the stored part of the line in progress, and say so once.
            framer.Seal(this);
            if (StorageFailure is null && !Capped)
            {
                Capped = true;
                Notice("output_truncated", $"The task's output reached its limit of {_maxStoredBytes} bytes; the rest is read but not stored.");
            }
        }
    }

    /// <summary>The streams have ended: what the masks held back, then the last lines without a newline.</summary>
    public void Complete()
    {
        if (_masks is not null)
        {
            foreach (var stream in new[] { OutputStream.StandardOutput, OutputStream.StandardError })
            {
                _masked!.Clear();
                _masks[Index(stream)].Flush(_masked);
                Take(stream, _masked.WrittenSpan);
            }
        }

        foreach (var framer in _framers)
            framer.Finish(this);
        NoteDrops(final: true);
    }

    /// <summary>
    /// Makes what was staged visible (one journal write; awaited, not blocking a thread, when the journal is a database
    /// that is out of reach). A full disk stops storing instead of throwing.
    /// </summary>
    public async ValueTask CommitAsync()
    {
        NoteDrops(final: false);
        try
        {
            await _journal.CommitAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (Files.IsOutOfSpace(e))
        {
            StorageFailure ??= e;
        }
        catch (JournalFencedException)
        {
            Fenced = true;
            _journal.DiscardStaged();
        }
    }

    /// <summary>
    /// While the cap drops output, the journal is told how much, at most every <see cref="DropNoteInterval"/> and once at
    /// the end, so a restart that finds the task cut short by a crash still reports (nearly) what was dropped.
    /// </summary>
    private void NoteDrops(bool final)
    {
        long dropped = _dropped[0] + _dropped[1];
        if (dropped == _notedDrops || StorageFailure is not null || Fenced
            || (!final && _notedAt is { } at && _time.GetElapsedTime(at) < DropNoteInterval))
            return;
        _journal.AddMeta(JournalNotes.Dropped, new DropNote(_dropped[0], _dropped[1]));
        _notedDrops = dropped;
        _notedAt = _time.GetTimestamp();
    }

    /// <summary>Stages a notice of the server's own (not the agent's).</summary>
    public void Notice(string kind, string message)
    {
        if (StorageFailure is null)
            _journal.AddEvent("agent.notice", new AgentNotice(kind, message));
    }

    private void OnLine(OutputStream stream, ReadOnlySpan<byte> bytes, LineFlags flags, long recordLength, bool record)
    {
        if (_run.LinesAreEvents)
        {
            flags |= LineFlags.Event;
        }
        else
        {
            bool fragment = (flags & LineFlags.Fragment) != 0;
            var parsed = _run.Parse(stream, fragment || bytes.IsEmpty || bytes[^1] != '\r' ? bytes : bytes[..^1], fragment);
            if (parsed.IsJson)
                flags |= LineFlags.Json;
            // The events of a line that is not stored are not stored either; what the parser keeps (the result) counts.
            if (record)
                Stage(parsed.Events);
        }

        if (record)
            _journal.AddLine(flags | (stream == OutputStream.StandardError ? LineFlags.Stderr : 0), recordLength);
    }

    private void Stage(IReadOnlyList<AgentEvent> events)
    {
        foreach (var e in events)
        {
            if (e is AgentStderr && ++_stderrEvents > MaxStderrEvents)
            {
                if (_stderrEvents == MaxStderrEvents + 1)
                    Notice("stderr_truncated", $"More than {MaxStderrEvents} stderr lines; the rest are in the transcript only.");
                continue;
            }

            _journal.AddEvent(e.EventName, e);
        }
    }

    private static int Index(OutputStream stream) => stream == OutputStream.StandardError ? 1 : 0;

    /// <summary>
    /// Cuts one stream into lines. Records tile the stored bytes exactly: each says how many bytes of the stream file it
    /// covers. For a protocol agent the line's bytes are kept (up to the limit) for the parser; otherwise only counted.
    /// </summary>
    private sealed class Framer(OutputStream stream, int maxLine, bool keepBytes)
    {
        private readonly ArrayBufferWriter<byte>? _line = keepBytes ? new() : null;
        private long _pending;    // bytes of the line in progress, read so far
        private long _unrecorded; // of those, stored and not yet covered by a record

        /// <summary>Whether records stopped (storing stopped); lines are still framed for the parser.</summary>
        public bool Sealed { get; private set; }

        /// <summary>Frames a chunk whose first <paramref name="stored"/> bytes were stored.</summary>
        public void Push(ReadOnlySpan<byte> chunk, int stored, OutputIngest owner)
        {
            int at = 0;
            while (at < chunk.Length)
            {
                var rest = chunk[at..];
                int room = (int)(maxLine - _pending); // content bytes the line may still take
                int newline = rest[..Math.Min(rest.Length, room + 1)].IndexOf((byte)'\n');
                if (newline >= 0)
                {
                    Emit(owner, rest[..newline], at, newline + 1, stored, LineFlags.None);
                    at += newline + 1;
                }
                else if (rest.Length <= room)
                {
                    _line?.Write(rest);
                    _pending += rest.Length;
                    _unrecorded += StoredPart(at, rest.Length, stored);
                    return;
                }
                else
                {
                    // Longer than the limit: a fragment, cut on a UTF-8 boundary; the line goes on in the next one.
                    int take = Utf8Boundary(rest[..room]);
                    Emit(owner, rest[..take], at, take, stored, LineFlags.Fragment);
                    at += take;
                }
            }
        }

        /// <summary>Covers the stored bytes of the line in progress with a fragment record; no record after this.</summary>
        public void Seal(OutputIngest owner)
        {
            if (_unrecorded > 0)
            {
                var flags = LineFlags.Fragment | (owner._run.LinesAreEvents ? LineFlags.Event : 0) | (stream == OutputStream.StandardError ? LineFlags.Stderr : 0);
                owner._journal.AddLine(flags, _unrecorded);
            }

            _unrecorded = 0;
            Sealed = true;
        }

        /// <summary>The stream ended: the line in progress has no newline.</summary>
        public void Finish(OutputIngest owner)
        {
            if (_pending == 0)
                return;
            owner.OnLine(stream, _line is null ? default : _line.WrittenSpan, LineFlags.Unterminated, _unrecorded, !Sealed && _unrecorded > 0);
            _line?.Clear();
            _pending = 0;
            _unrecorded = 0;
        }

        private void Emit(OutputIngest owner, ReadOnlySpan<byte> content, int at, int length, int stored, LineFlags flags)
        {
            long recordLength = _unrecorded + StoredPart(at, length, stored);
            bool record = !Sealed && at + length <= stored;
            if (_line is { WrittenCount: > 0 })
            {
                _line.Write(content);
                owner.OnLine(stream, _line.WrittenSpan, flags, recordLength, record);
                _line.Clear();
            }
            else
            {
                owner.OnLine(stream, content, flags, recordLength, record);
            }

            // A line stored only in part (storing stopped inside it) keeps its stored bytes for Seal's fragment.
            _unrecorded = record ? 0 : recordLength;
            _pending = 0;
        }

        private static long StoredPart(int at, int length, int stored) => Math.Clamp(stored - at, 0, length);

        /// <summary>Backs off over an incomplete multi-byte sequence at the end (at most 3 bytes), so each fragment decodes cleanly.</summary>
        private static int Utf8Boundary(ReadOnlySpan<byte> span)
        {
            for (int back = 1; back <= Math.Min(3, span.Length - 1); back++)
            {
                byte b = span[^back];
                if ((b & 0xC0) != 0x80)
                {
                    int needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                    return needed > back ? span.Length - back : span.Length;
                }
            }

            return span.Length;
        }
    }
}
