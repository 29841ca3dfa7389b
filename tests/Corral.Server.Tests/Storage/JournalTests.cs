using System.Text;
using Corral.Processes;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Tests.Storage;

/// <summary>The journal: output records, line records over them, numbered events, torn tails, live readers.</summary>
public sealed class JournalTests : IDisposable
{
    private readonly string _dir = Path.Combine(Directory.CreateTempSubdirectory("corral-journal-").FullName, "task");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_dir)!, true);

    private static List<JournalEntry> ReadAll(JournalReader reader, long? limit = null) => [.. Read(reader, limit).Select(r => r.Entry)];

    /// <summary>Every record with its bytes, read as it comes (a line's bytes are there until the next read).</summary>
    private static List<(JournalEntry Entry, string Text)> Read(JournalReader reader, long? limit = null)
    {
        var entries = new List<(JournalEntry, string)>();
        while (reader.TryRead(limit ?? reader.FileLength, out var e))
            entries.Add((e, Text(reader, e)));
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

        Assert.Equal(["journal"], Directory.GetFiles(_dir).Select(Path.GetFileName)); // one file per task
        using var reader = new JournalReader(_dir);
        var entries = Read(reader).Where(e => !e.Entry.IsOutput).ToList();
        Assert.Equal([1L, 2, 3, 4, 0, 0, 5], entries.Select(e => e.Entry.EventId));
        Assert.Equal(["task.status", null, null, null, "started", null, "task.end"], entries.Select(e => e.Entry.Name));
        Assert.Equal("one\n", entries[1].Text);
        Assert.Equal("two\n", entries[2].Text);
        Assert.Equal("err\n", entries[3].Text);
        Assert.Equal(OutputStream.StandardError, entries[3].Entry.Stream);
        Assert.True(entries[4].Entry.IsMeta);
        Assert.Equal("""{"status":"succeeded"}""", entries[6].Text);
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
    public void A_line_spread_over_several_chunks_reads_whole_and_a_reader_holds_only_what_lines_to_come_need()
    {
        using (var writer = JournalWriter.Create(_dir))
        {
            writer.WriteOutput(OutputStream.StandardOutput, "he"u8);
            writer.WriteOutput(OutputStream.StandardError, "e1\n"u8);
            writer.AddLine(LineFlags.Stderr, 3);
            writer.WriteOutput(OutputStream.StandardOutput, "ll"u8);
            writer.WriteOutput(OutputStream.StandardOutput, "o\nx"u8);
            writer.AddLine(LineFlags.None, 6);
            writer.WriteOutput(OutputStream.StandardOutput, "y\n"u8);
            writer.AddLine(LineFlags.None, 3);
            writer.Commit();
        }

        using var reader = new JournalReader(_dir);
        var lines = new List<string>();
        while (reader.TryRead(reader.FileLength, out var e))
        {
            if (e.IsLine)
                lines.Add(Text(reader, e));
        }

        Assert.Equal(["e1\n", "hello\n", "xy\n"], lines);
        Assert.Equal(9, reader.StreamLength(OutputStream.StandardOutput));
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

        // A crash in the middle of the next append: half an event record.
        File.AppendAllBytes(Path.Combine(_dir, "journal"), [JournalFormat.EventTag, 8, (byte)'a', (byte)'g']);
        using (var reader = new JournalReader(_dir))
            Assert.Equal(3, ReadAll(reader).Count);

        using (var writer = JournalWriter.Open(_dir))
        {
            Assert.Equal(2, writer.EventCount);
            writer.WriteOutput(OutputStream.StandardOutput, "more\n"u8);
            writer.AddLine(LineFlags.Event, 5);
            writer.AddEvent("task.end", new { status = "interrupted" });
            writer.Commit();
        }

        using var again = new JournalReader(_dir);
        var entries = Read(again).Where(e => !e.Entry.IsOutput).ToList();
        Assert.Equal([1L, 2, 3, 4], entries.Select(e => e.Entry.EventId));
        Assert.Equal("hello\n", entries[1].Text);
        Assert.Equal("more\n", entries[2].Text);
    }

    [Fact]
    public void Files_are_private_to_the_server()
    {
        using var writer = JournalWriter.Create(_dir);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_dir));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, "journal")));
    }

    [Fact]
    public void A_missing_or_foreign_journal_reads_as_empty()
    {
        Assert.Empty(ReadAll(new JournalReader(_dir)));
        Directory.CreateDirectory(_dir);
        File.WriteAllText(Path.Combine(_dir, "journal"), "{\"id\":1}\n");
        Assert.Empty(ReadAll(new JournalReader(_dir)));
    }

    [Fact]
    public void A_tree_note_made_unreadable_reads_as_no_tree_and_the_head_stops_at_the_first_output()
    {
        using (var writer = JournalWriter.Create(_dir))
        {
            writer.AddMeta(JournalNotes.Started, new StartNote(DateTimeOffset.UnixEpoch, ["bash"]));
            writer.AddMeta(JournalNotes.Tree, "12345"); // what a mask leaves of a note whose pid was a secret's digits: not a tree
            writer.WriteOutput(OutputStream.StandardOutput, "hi\n"u8);
            writer.AddMeta(JournalNotes.Tree, new TreeIdentity("t-late", null, 7));
            writer.Commit();
        }

        var head = JournalFacts.Of(new JournalReader(_dir), headOnly: true);
        Assert.Null(head.Tree);
        Assert.Equal(["bash"], head.Start!.Command!);
        Assert.Equal(0, head.StdoutBytes);
        var all = JournalFacts.Of(new JournalReader(_dir));
        Assert.Equal("t-late", all.Tree!.TreeId);
        Assert.Equal(3, all.StdoutBytes);
    }
}
