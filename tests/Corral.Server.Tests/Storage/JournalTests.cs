using System.Text;
using Corral.Processes;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Tests.Storage;

/// <summary>The journal: line records over the raw stream files, numbered events, torn tails, live readers.</summary>
public sealed class JournalTests : IDisposable
{
    private readonly string _dir = Path.Combine(Directory.CreateTempSubdirectory("corral-journal-").FullName, "task");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_dir)!, true);

    private static List<JournalEntry> ReadAll(JournalReader reader, long? limit = null)
    {
        var entries = new List<JournalEntry>();
        while (reader.TryRead(limit ?? reader.FileLength, out var e))
            entries.Add(e);
        return entries;
    }

    private static string Text(JournalReader reader, JournalEntry e) => Encoding.UTF8.GetString(reader.ReadAll(e));

    [Fact]
    public void Lines_point_into_the_stream_files_and_events_and_event_lines_are_numbered_in_order()
    {
        using (var writer = JournalWriter.Create(_dir))
        {
            writer.AddEvent("task.status", new { status = "queued" });
            writer.WriteOutput(OutputStream.StandardOutput, "one\ntwo\n"u8);
            writer.AddLine(LineFlags.Event, 4);
            writer.AddLine(LineFlags.Event, 4);
            writer.WriteOutput(OutputStream.StandardError, "err\n"u8);
            writer.AddLine(LineFlags.Event | LineFlags.Stderr, 4);
            writer.AddMeta(JournalNotes.Started, new { at = 1 });
            writer.AddLine(LineFlags.Json, 0);
            writer.AddEvent("task.end", new { status = "succeeded" });
            writer.Commit();
            Assert.Equal(5, writer.EventCount);
        }

        Assert.Equal("one\ntwo\n", File.ReadAllText(Path.Combine(_dir, "stdout")));
        using var reader = new JournalReader(_dir);
        var entries = ReadAll(reader);
        Assert.Equal([1L, 2, 3, 4, 0, 0, 5], entries.Select(e => e.EventId));
        Assert.Equal(["task.status", null, null, null, "started", null, "task.end"], entries.Select(e => e.Name));
        Assert.Equal("one\n", Text(reader, entries[1]));
        Assert.Equal("two\n", Text(reader, entries[2]));
        Assert.Equal("err\n", Text(reader, entries[3]));
        Assert.Equal(OutputStream.StandardError, entries[3].Stream);
        Assert.True(entries[4].IsMeta);
        Assert.Equal("""{"status":"succeeded"}""", Text(reader, entries[6]));
    }

    [Fact]
    public void A_live_reader_sees_only_what_is_committed()
    {
        using var writer = JournalWriter.Create(_dir);
        writer.AddEvent("a", new { });
        writer.Commit();
        var changed = writer.Changed;
        writer.AddEvent("b", new { });
        using var reader = new JournalReader(_dir);
        Assert.Single(ReadAll(reader, writer.Committed));
        Assert.False(changed.IsCompleted);
        writer.Commit();
        Assert.True(changed.IsCompleted);
        Assert.Equal(["b"], ReadAll(reader, writer.Committed).Select(e => e.Name));
    }

    [Fact]
    public void A_torn_tail_is_cut_off_on_reopening_and_numbering_continues_after_the_last_whole_record()
    {
        using (var writer = JournalWriter.Create(_dir))
        {
            writer.AddEvent("task.status", new { status = "queued" });
            writer.WriteOutput(OutputStream.StandardOutput, "hello\n"u8);
            writer.AddLine(LineFlags.Event, 6);
            writer.Commit();
        }

        // A crash in the middle of the next append: half an event record, and output no line refers to yet.
        File.AppendAllBytes(Path.Combine(_dir, "journal"), [JournalFormat.EventTag, 8, (byte)'a', (byte)'g']);
        File.AppendAllBytes(Path.Combine(_dir, "stdout"), "partial"u8.ToArray());
        using (var reader = new JournalReader(_dir))
            Assert.Equal(2, ReadAll(reader).Count);

        using (var writer = JournalWriter.Open(_dir))
        {
            Assert.Equal(2, writer.EventCount);
            writer.WriteOutput(OutputStream.StandardOutput, "more\n"u8);
            writer.AddLine(LineFlags.Event, 5);
            writer.AddEvent("task.end", new { status = "interrupted" });
            writer.Commit();
        }

        using var again = new JournalReader(_dir);
        var entries = ReadAll(again);
        Assert.Equal([1L, 2, 0, 3, 4], entries.Select(e => e.EventId));
        Assert.Equal("hello\n", Text(again, entries[1]));
        Assert.Equal("partial", Text(again, entries[2])); // bytes no record referred to get one of their own: kept, not an event
        Assert.Equal("more\n", Text(again, entries[3]));
        Assert.Equal("hello\npartialmore\n", File.ReadAllText(Path.Combine(_dir, "stdout")));
    }

    [Fact]
    public void Files_are_private_to_the_server()
    {
        using var writer = JournalWriter.Create(_dir);
        writer.WriteOutput(OutputStream.StandardOutput, "x"u8);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "journal")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "stdout")));
    }

    [Fact]
    public void A_missing_or_foreign_journal_reads_as_empty()
    {
        Assert.Empty(ReadAll(new JournalReader(_dir)));
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "journal"), "{\"id\":1}\n");
        Assert.Empty(ReadAll(new JournalReader(_dir)));
    }
}
