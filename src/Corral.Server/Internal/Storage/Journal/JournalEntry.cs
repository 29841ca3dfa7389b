using Corral.Processes;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>What a journal record is.</summary>
internal enum EntryKind
{
    /// <summary>Bytes of output, as read (one chunk of one stream).</summary>
    Output,

    /// <summary>A line over the output bytes of its stream.</summary>
    Line,

    /// <summary>An event: a name and its JSON data.</summary>
    Event,

    /// <summary>A note of the server's own: the shape of an event, never sent.</summary>
    Meta,
}

/// <summary>One record of a journal, as read: where its bytes are, and what they are.</summary>
/// <param name="Kind">What the record is.</param>
/// <param name="EventId">The SSE id of an event, or of a line flagged <see cref="LineFlags.Event"/>; 0 otherwise.</param>
/// <param name="Name">An event's or a note's name.</param>
/// <param name="Flags">A line's flags; for output, only <see cref="LineFlags.Stderr"/>.</param>
/// <param name="Offset">Output, an event, a note: where its bytes start in the journal. A line: where it starts in its stream (the stream's bytes so far).</param>
/// <param name="Length">Bytes: a line's with its terminator; an event's data; a chunk's.</param>
internal readonly record struct JournalEntry(EntryKind Kind, long EventId, string? Name, LineFlags Flags, long Offset, long Length)
{
    public bool IsLine => Kind == EntryKind.Line;

    public bool IsEvent => EventId > 0;

    public bool IsMeta => Kind == EntryKind.Meta;

    public bool IsOutput => Kind == EntryKind.Output;

    public OutputStream Stream => (Flags & LineFlags.Stderr) != 0 ? OutputStream.StandardError : OutputStream.StandardOutput;

    /// <summary>The line's text length: its bytes without the <c>\n</c> terminator (a <c>\r</c> before it is the reader's to drop).</summary>
    public long ContentLength => (Flags & (LineFlags.Fragment | LineFlags.Unterminated)) != 0 ? Length : Length - 1;
}
