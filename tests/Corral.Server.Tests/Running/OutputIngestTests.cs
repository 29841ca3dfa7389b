using System.Text;
using Corral.Agents;
using Corral.Agents.ClaudeCode;
using Corral.Agents.Command;
using Corral.Processes;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Tests.Running;

/// <summary>Output into the journal: stored once and exactly, framed into lines, capped, parsed.</summary>
public sealed class OutputIngestTests : IDisposable
{
    private readonly string _dir = Path.Combine(Directory.CreateTempSubdirectory("corral-ingest-").FullName, "task");

    public void Dispose() => Directory.Delete(Path.GetDirectoryName(_dir)!, true);

    private IAgentRun Command(int maxLine = CommandAdapter.MaxLineLength)
    {
        var run = new CommandAdapter().Prepare(new AgentRequest { Command = ["true"], WorkingDirectory = "/", TaskDirectory = _dir });
        return maxLine == run.Spec.Limits.MaxLineLength ? run : new LimitedRun(run, maxLine);
    }

    /// <summary>What the journal holds of a stream's output, in order.</summary>
    private byte[] Stored(OutputStream stream)
    {
        using var reader = new JournalReader(_dir);
        var bytes = new List<byte>();
        while (reader.TryRead(reader.FileLength, out var e))
        {
            if (e.IsOutput && e.Stream == stream)
                bytes.AddRange(reader.ReadAll(e));
        }

        return [.. bytes];
    }

    private List<(JournalEntry Entry, string Text)> Lines()
    {
        using var reader = new JournalReader(_dir);
        var lines = new List<(JournalEntry, string)>();
        while (reader.TryRead(reader.FileLength, out var e))
        {
            if (e.IsLine)
                lines.Add((e, Encoding.UTF8.GetString(reader.ReadAll(e))));
        }

        return lines;
    }

    [Fact]
    public async Task Lines_split_across_chunks_are_one_record_and_the_bytes_are_stored_as_written()
    {
        using var journal = JournalWriter.Create(_dir);
        var ingest = new OutputIngest(journal, Command(), long.MaxValue);
        ingest.Write(OutputStream.StandardOutput, [.. "A"u8, 0xFF, .. "B\nsplit "u8, 0xFF]);
        ingest.Write(OutputStream.StandardOutput, "line\r\nlast"u8);
        ingest.Complete();
        await ingest.CommitAsync();

        byte[] expected = [.. "A"u8, 0xFF, .. "B\nsplit "u8, 0xFF, .. "line\r\nlast"u8];
        Assert.Equal(expected, Stored(OutputStream.StandardOutput));
        var lines = Lines();
        Assert.Equal(3, lines.Count);
        Assert.All(lines, l => Assert.True((l.Entry.Flags & LineFlags.Event) != 0));
        Assert.Equal(expected.Length, lines.Sum(l => l.Entry.Length));
        Assert.Equal(LineFlags.Unterminated, lines[2].Entry.Flags & LineFlags.Unterminated);
        Assert.Equal(expected.Length, ingest.StoredBytes);
        Assert.Equal("last", Encoding.UTF8.GetString(ingest.StdoutTail[^4..]));
    }

    [Fact]
    public async Task A_line_longer_than_the_limit_becomes_fragments_cut_on_a_character_boundary()
    {
        using var journal = JournalWriter.Create(_dir);
        var ingest = new OutputIngest(journal, Command(maxLine: 10), long.MaxValue);
        // 9 ASCII bytes then a 2-byte character: the first cut backs off to 9 so the character stays whole.
        ingest.Write(OutputStream.StandardOutput, Encoding.UTF8.GetBytes("123456789é0123456789abc\n"));
        await ingest.CommitAsync();
        var lines = Lines();
        Assert.Equal(["123456789", "é01234567", "89abc\n"], lines.Select(l => l.Text));
        Assert.Equal([true, true, false], lines.Select(l => (l.Entry.Flags & LineFlags.Fragment) != 0));
    }

    [Fact]
    public async Task Past_the_cap_nothing_more_is_stored_and_the_dropped_bytes_are_counted()
    {
        using var journal = JournalWriter.Create(_dir);
        var ingest = new OutputIngest(journal, Command(), maxStoredBytes: 10);
        ingest.Write(OutputStream.StandardOutput, "12345\n789"u8);   // 9 stored
        ingest.Write(OutputStream.StandardOutput, "AB\nCDEF\n"u8);   // 1 stored ("A"), 7 dropped
        ingest.Write(OutputStream.StandardError, "late\n"u8);        // 5 dropped
        ingest.Complete();
        await ingest.CommitAsync();

        Assert.Equal("12345\n789A", Encoding.UTF8.GetString(Stored(OutputStream.StandardOutput)));
        Assert.Empty(Stored(OutputStream.StandardError));
        Assert.True(ingest.Capped);
        Assert.Equal(10, ingest.StoredBytes);
        Assert.Equal(7, ingest.DroppedBytes(OutputStream.StandardOutput));
        Assert.Equal(5, ingest.DroppedBytes(OutputStream.StandardError));
        var lines = Lines();
        Assert.Equal(["12345\n", "789A"], lines.Select(l => l.Text));
        Assert.True((lines[1].Entry.Flags & LineFlags.Fragment) != 0);

        using var reader = new JournalReader(_dir);
        var names = new List<string?>();
        while (reader.TryRead(reader.FileLength, out var e))
            names.Add(e.Name);
        Assert.Contains("agent.notice", names);
    }

    [Fact]
    public async Task Dropped_bytes_are_noted_in_the_journal_at_most_every_interval_and_at_the_end()
    {
        using var journal = JournalWriter.Create(_dir);
        var clock = new ManualClock();
        var ingest = new OutputIngest(journal, Command(), maxStoredBytes: 10, time: clock);
        ingest.Write(OutputStream.StandardOutput, "0123456789ABCDEFGHIJ"u8); // 10 dropped
        await ingest.CommitAsync();
        clock.Advance(OutputIngest.DropNoteInterval / 2);
        ingest.Write(OutputStream.StandardError, "12345"u8);                // 5 more: too soon to note
        await ingest.CommitAsync();
        clock.Advance(OutputIngest.DropNoteInterval);
        await ingest.CommitAsync();                                                     // due now, with nothing new read
        await ingest.CommitAsync();                                                     // nothing changed: no note
        ingest.Write(OutputStream.StandardOutput, "x"u8);
        ingest.Complete();                                                   // the end is always noted
        await ingest.CommitAsync();

        using var reader = new JournalReader(_dir);
        var notes = new List<string>();
        while (reader.TryRead(reader.FileLength, out var e))
        {
            if (e.IsMeta && e.Name == JournalNotes.Dropped)
                notes.Add(Encoding.UTF8.GetString(reader.ReadAll(e)));
        }

        Assert.Equal(["""{"stdout":10,"stderr":0}""", """{"stdout":10,"stderr":5}""", """{"stdout":11,"stderr":5}"""], notes);
        Assert.Equal(new DropNote(11, 5), JournalFacts.Of(new JournalReader(_dir)).Dropped);
    }

    /// <summary>A clock that moves only when told.</summary>
    private sealed class ManualClock : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public async Task A_protocol_agent_gets_whole_lines_and_its_result_is_read_past_the_cap()
    {
        using var journal = JournalWriter.Create(_dir);
        var run = new ClaudeCodeAdapter(new ClaudeCodeSettings()).Prepare(new AgentRequest { Prompt = "hi", WorkingDirectory = "/", TaskDirectory = _dir, NewSessionId = Guid.NewGuid().ToString() });
        var ingest = new OutputIngest(journal, run, maxStoredBytes: 40);
        string text = """{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"hello"}]}}""" + "\n";
        string result = """{"type":"result","subtype":"success","is_error":false,"result":"done","session_id":"s"}""" + "\n";
        byte[] all = Encoding.UTF8.GetBytes(text + "not json\n" + result);
        foreach (var piece in all.Chunk(7))
            ingest.Write(OutputStream.StandardOutput, piece);
        ingest.Complete();
        await ingest.CommitAsync();

        Assert.True(run.HasResult);
        Assert.Equal("done", run.Complete(null, default).Result!.Text);
        Assert.Equal(40, ingest.StoredBytes);
        Assert.Equal(all.Length - 40, ingest.DroppedBytes(OutputStream.StandardOutput));
        // The only line record covers the stored part of the first (JSON) line, as a fragment; the events of lines
        // that were not stored are not stored either.
        var lines = Lines();
        Assert.Equal(40, Assert.Single(lines).Entry.Length);
    }

    [Fact]
    public async Task Json_lines_are_flagged_for_the_transcript_and_their_events_staged()
    {
        using var journal = JournalWriter.Create(_dir);
        var run = new ClaudeCodeAdapter(new ClaudeCodeSettings()).Prepare(new AgentRequest { Prompt = "hi", WorkingDirectory = "/", TaskDirectory = _dir, NewSessionId = Guid.NewGuid().ToString() });
        var ingest = new OutputIngest(journal, run, long.MaxValue);
        ingest.Write(OutputStream.StandardOutput, """{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"hello"}]}}"""u8.ToArray().Concat("\r\nplain\n"u8.ToArray()).ToArray());
        ingest.Write(OutputStream.StandardError, "warning\n"u8);
        await ingest.CommitAsync();

        using var reader = new JournalReader(_dir);
        var entries = new List<JournalEntry>();
        while (reader.TryRead(reader.FileLength, out var e))
            entries.Add(e);
        entries.RemoveAll(e => e.IsOutput);
        Assert.Equal(["agent.text", null, "agent.notice", null, "agent.stderr", null], entries.Select(e => e.Name));
        Assert.True((entries[1].Flags & LineFlags.Json) != 0);
        Assert.True((entries[3].Flags & LineFlags.Json) == 0);
        Assert.Equal(OutputStream.StandardError, entries[5].Stream);
    }

    /// <summary>A run with another line limit (the command adapter's is 1 MiB).</summary>
    private sealed class LimitedRun(IAgentRun inner, int maxLine) : IAgentRun
    {
        public ProcessSpec Spec { get; } = inner.Spec with { Limits = inner.Spec.Limits with { MaxLineLength = maxLine } };
        public string? SessionId => inner.SessionId;
        public ReadOnlyMemory<byte> InitialInput => inner.InitialInput;
        public bool KeepInputOpen => inner.KeepInputOpen;
        public ReadOnlyMemory<byte>? InterruptInput => inner.InterruptInput;
        public bool HasResult => inner.HasResult;
        public bool LinesAreEvents => inner.LinesAreEvents;
        public ParsedLine Parse(OutputStream stream, ReadOnlySpan<byte> line, bool isFragment) => inner.Parse(stream, line, isFragment);
        public AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail) => inner.Complete(process, stdoutTail);
    }
}
