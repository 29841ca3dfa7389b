using Corral.Processes;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>One record of a journal, as read: a line (its place in its stream's file) or an event (its data's place in the journal).</summary>
/// <param name="EventId">The SSE id of an event, or of a line flagged <see cref="LineFlags.Event"/>; 0 for other lines.</param>
/// <param name="Name">The event's name; <c>null</c> for a line.</param>
/// <param name="Flags">A line's flags.</param>
/// <param name="Offset">A line: where its bytes start in the stream file. An event: where its JSON data starts in the journal.</param>
/// <param name="Length">Bytes: a line's, with its terminator; an event's data.</param>
internal readonly record struct JournalEntry(long EventId, string? Name, LineFlags Flags, long Offset, long Length)
{
    public bool IsLine => Name is null;

    public bool IsEvent => EventId > 0;

    /// <summary>A note of the server's own, not an event.</summary>
    public bool IsMeta => Name is not null && EventId == 0;

    public OutputStream Stream => (Flags & LineFlags.Stderr) != 0 ? OutputStream.StandardError : OutputStream.StandardOutput;

    /// <summary>The line's text length: its bytes without the <c>\n</c> terminator (a <c>\r</c> before it is the reader's to drop).</summary>
    public long ContentLength => (Flags & (LineFlags.Fragment | LineFlags.Unterminated)) != 0 ? Length : Length - 1;
}
