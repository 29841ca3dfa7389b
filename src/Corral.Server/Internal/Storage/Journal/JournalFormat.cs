using System.Buffers;
using System.Text;
using Corral.Processes;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>What a line record says about its line.</summary>
[Flags]
internal enum LineFlags : byte
{
    None = 0,

    /// <summary>The line came from stderr (otherwise stdout).</summary>
    Stderr = 1,

    /// <summary>The agent's protocol (a JSON object line): the transcript keeps it verbatim.</summary>
    Json = 2,

    /// <summary>The line is an <c>output</c> event of its own (the command agent).</summary>
    Event = 4,

    /// <summary>A piece of a line longer than the limit; the line goes on in the next record.</summary>
    Fragment = 8,

    /// <summary>The last bytes of the stream, with no newline after them.</summary>
    Unterminated = 16,
}

/// <summary>
/// The journal of a task (<c>tasks/&lt;id&gt;/journal</c>), the one file that holds all it printed and all that
/// happened to it, in order. An <b>output</b> record is a chunk of one stream's bytes exactly as read (after secret
/// masking, within the output cap), so output is on disk once. A <b>line</b> record is only flags and a length
/// (3–4 bytes): the line is the next that many bytes of its stream. An <b>event</b> record is a name and its JSON
/// data. Events, and the lines flagged <see cref="LineFlags.Event"/>, are numbered 1, 2, 3… in journal order: those
/// are the SSE ids. A <b>meta</b> record has the shape of an event but is the server's own note (the run started,
/// its process tree), never sent. One file per task: creating files is the dearest thing a task does on ext4.
/// </summary>
/// <remarks>
/// Layout: the 8-byte <see cref="Header"/>, then records. Output: <c>0x04, stream (1 stdout, 2 stderr), varint length,
/// bytes</c>. Line: <c>0x01, flags, varint length</c> (the length counts the terminating <c>\n</c> when there is one;
/// a line's bytes always come in output records before it). Event: <c>0x02, name length (1 byte), name, varint data
/// length, data</c>; meta: the same with <c>0x03</c>. Records are appended by one write per commit, but a reader of
/// a live journal must stop at the length the writer has committed (a concurrent read may see part of a write);
/// after a crash, a torn last record is cut off.
/// </remarks>
internal static class JournalFormat
{
    public const byte LineTag = 1;
    public const byte EventTag = 2;
    public const byte MetaTag = 3;
    public const byte OutputTag = 4;

    public static ReadOnlySpan<byte> Header => "CRLJ\u0001\0\0\0"u8;

    public const string FileName = "journal";

    public static void WriteLine(IBufferWriter<byte> to, LineFlags flags, long length)
    {
        var span = to.GetSpan(12);
        span[0] = LineTag;
        span[1] = (byte)flags;
        int n = 2 + WriteVarint(span[2..], (ulong)length);
        to.Advance(n);
    }

    public static void WriteOutput(IBufferWriter<byte> to, OutputStream stream, ReadOnlySpan<byte> bytes)
    {
        var span = to.GetSpan(12 + bytes.Length);
        span[0] = OutputTag;
        span[1] = (byte)stream;
        int n = 2 + WriteVarint(span[2..], (ulong)bytes.Length);
        bytes.CopyTo(span[n..]);
        to.Advance(n + bytes.Length);
    }

    public static void WriteEvent(IBufferWriter<byte> to, string name, ReadOnlySpan<byte> data) => WriteNamed(to, EventTag, name, data);

    public static void WriteMeta(IBufferWriter<byte> to, string name, ReadOnlySpan<byte> data) => WriteNamed(to, MetaTag, name, data);

    private static void WriteNamed(IBufferWriter<byte> to, byte tag, string name, ReadOnlySpan<byte> data)
    {
        int nameLength = Encoding.ASCII.GetByteCount(name);
        if (nameLength is 0 or > 255)
            throw new ArgumentException("An event name is 1 to 255 ASCII characters.", nameof(name));
        var span = to.GetSpan(2 + nameLength + 10 + data.Length);
        span[0] = tag;
        span[1] = (byte)nameLength;
        Encoding.ASCII.GetBytes(name, span[2..]);
        int n = 2 + nameLength;
        n += WriteVarint(span[n..], (ulong)data.Length);
        data.CopyTo(span[n..]);
        to.Advance(n + data.Length);
    }

    public static int WriteVarint(Span<byte> to, ulong value)
    {
        int i = 0;
        while (value >= 0x80)
        {
            to[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        to[i++] = (byte)value;
        return i;
    }

    /// <summary>Reads a varint; 0 when <paramref name="from"/> ends first (or it is longer than 10 bytes).</summary>
    public static int ReadVarint(ReadOnlySpan<byte> from, out ulong value)
    {
        value = 0;
        for (int i = 0, shift = 0; i < from.Length && i < 10; i++, shift += 7)
        {
            value |= (ulong)(from[i] & 0x7F) << shift;
            if ((from[i] & 0x80) == 0)
                return i + 1;
        }

        return 0;
    }

    public static bool HasHeader(ReadOnlySpan<byte> bytes) => bytes.Length >= Header.Length && bytes[..Header.Length].SequenceEqual(Header);

    /// <summary>Event names are a small fixed set: one string each instead of one per record read.</summary>
    public static string Name(ReadOnlySpan<byte> ascii)
    {
        foreach (string known in KnownNames)
        {
            if (ascii.Length == known.Length && Encoding.ASCII.GetByteCount(known) == ascii.Length && Matches(ascii, known))
                return known;
        }

        return Encoding.ASCII.GetString(ascii);
    }

    private static readonly string[] KnownNames =
        ["output", "task.status", "task.result", "task.end", "agent.init", "agent.text", "agent.tool_use", "agent.tool_result", "agent.notice", "agent.stderr"];

    private static bool Matches(ReadOnlySpan<byte> ascii, string name)
    {
        for (int i = 0; i < ascii.Length; i++)
        {
            if (ascii[i] != name[i])
                return false;
        }

        return true;
    }
}

/// <summary>The names of the server's own notes in a journal (meta records).</summary>
internal static class JournalNotes
{
    /// <summary>The run started (a <see cref="StartNote"/>, written before the process is created).</summary>
    public const string Started = "started";

    /// <summary>The run's process tree (a <see cref="TreeIdentity"/>), to kill what is left of it after a crash.</summary>
    public const string Tree = "tree";

    /// <summary>Output read but not stored so far (a <see cref="DropNote"/>), noted while the output cap drops it.</summary>
    public const string Dropped = "dropped";
}

/// <summary>How many bytes of each stream were read but not stored, as of the note.</summary>
internal sealed record DropNote(long Stdout, long Stderr);

/// <summary>What a journal says of a run before its process exists: when, and the command line (masked as the journal is).</summary>
internal sealed record StartNote(DateTimeOffset? At, IReadOnlyList<string>? Command);
