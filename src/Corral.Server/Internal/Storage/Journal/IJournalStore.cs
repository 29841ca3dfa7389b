namespace Corral.Server.Internal.Storage.Journal;

/// <summary>
/// Where task journals live: files on one node (<see cref="FileJournalStore"/>), rows of the shared database in a fleet.
/// The journal's bytes and records are the same everywhere (<see cref="JournalFormat"/>); only their storage differs.
/// </summary>
internal interface IJournalStore : IDisposable
{
    /// <summary>A new, empty journal for task <paramref name="id"/>.</summary>
    JournalWriter Create(string id);

    /// <summary>The existing journal of <paramref name="id"/>, to append to (cut to its last whole record); a new one if there is none.</summary>
    JournalWriter Open(string id);

    /// <summary>A reader from the start of <paramref name="id"/>'s journal; a missing journal reads as empty.</summary>
    JournalReader Read(string id);

    /// <summary>
    /// How far <paramref name="reader"/> may read <paramref name="id"/>'s journal now, a task that completes when it may
    /// read further, and whether more may still come (a writer has it open).
    /// </summary>
    JournalWatch Watch(string id, JournalReader reader);

    /// <summary>Deletes a task's journal (and what else the store keeps for it).</summary>
    void Delete(string id);

    /// <summary>Makes every journal written since the last call durable.</summary>
    void Sync();
}

/// <summary>What a reader may do now: read up to <paramref name="Limit"/>, then wait for <paramref name="Changed"/> while <paramref name="Open"/>.</summary>
internal readonly record struct JournalWatch(long Limit, Task Changed, bool Open);

/// <summary>The bytes of one journal, to read.</summary>
internal interface IJournalSource : IDisposable
{
    /// <summary>How many bytes there are (whole commits only).</summary>
    long Length { get; }

    /// <summary>Reads up to <paramref name="buffer"/>'s length at <paramref name="position"/>; fewer (or 0) at the end.</summary>
    int Read(long position, Span<byte> buffer);
}

/// <summary>The bytes of one journal, to append to.</summary>
internal interface IJournalSink : IDisposable
{
    /// <summary>Writes a whole commit at <paramref name="position"/> (the end). Throws when it cannot (disk full, fenced).</summary>
    void Append(ReadOnlySpan<byte> bytes, long position);

    /// <summary>Cuts the journal back to <paramref name="length"/> (a torn or failed write).</summary>
    void Truncate(long length);

    /// <summary>Makes what was appended durable.</summary>
    void Sync();
}

/// <summary>
/// A sink whose appends may wait a long while (a database out of reach): <see cref="JournalWriter.CommitAsync"/> awaits
/// them instead of blocking a thread, so that tasks waiting out an outage do not starve the server's thread pool.
/// </summary>
internal interface IAsyncJournalSink : IJournalSink
{
    /// <summary>
    /// Writes a whole commit at <paramref name="position"/> (the end), with <paramref name="counts"/>, what it holds of the
    /// output. Throws when it cannot (fenced, or out of reach too long). <paramref name="bytes"/> is the sink's from
    /// now on (the caller made it for this append), so it is not copied again.
    /// </summary>
    ValueTask AppendAsync(byte[] bytes, long position, ChunkCounts counts);
}

/// <summary>What one commit of a journal holds of the output: the bytes of each stream, and the drop note it carries, if any.</summary>
internal readonly record struct ChunkCounts(long Stdout, long Stderr, DropNote? Dropped);

/// <summary>An append refused because another node now holds the task (this node's lease on it was lost).</summary>
internal sealed class JournalFencedException(string id) : IOException($"Task {id}'s journal belongs to another node now: this node's lease on it was lost.");
