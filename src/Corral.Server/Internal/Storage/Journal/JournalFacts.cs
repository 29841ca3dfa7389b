using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>What a task's journal says: its final record if it holds its end, its start, its tree, its output's size, and what the cap dropped as last noted.</summary>
internal sealed record JournalFacts(TaskRecord? Final, StartNote? Start, TreeIdentity? Tree, long StdoutBytes, long StderrBytes, DropNote Dropped)
{
    /// <summary>What an empty journal says: nothing.</summary>
    public static readonly JournalFacts None = new(null, null, null, 0, 0, new DropNote(0, 0));

    /// <summary>
    /// Reads <paramref name="journal"/> to its end (and disposes of it); with <paramref name="headOnly"/>, no further than
    /// its first output (the start and tree notes are committed before any), so that a journal of a gigabyte is not read
    /// to learn them.
    /// </summary>
    public static JournalFacts Of(JournalReader journal, bool headOnly = false)
    {
        using var reader = journal;
        long limit = reader.FileLength;
        JournalEntry? result = null;
        bool ended = false;
        StartNote? start = null;
        TreeIdentity? tree = null;
        DropNote? dropped = null;
        long stdout = 0, stderr = 0;
        while (reader.TryRead(limit, out var e))
        {
            if (headOnly && (e.IsLine || e.IsOutput))
                break;
            if (e.IsLine)
                continue;
            if (e.IsOutput)
            {
                if (e.Stream == OutputStream.StandardError)
                    stderr += e.Length;
                else
                    stdout += e.Length;
                continue;
            }

            if (e.Name == "task.result")
                result = e;
            else if (e.IsMeta && e.Name == JournalNotes.Started)
                start = StartNoteOf(reader.ReadAll(e));
            else if (e.IsMeta && e.Name == JournalNotes.Tree)
                tree = TreeOf(reader.ReadAll(e)) ?? tree;
            else if (e.IsMeta && e.Name == JournalNotes.Dropped)
                dropped = DropNoteOf(reader.ReadAll(e)) ?? dropped;
            ended = e.Name == "task.end";
        }

        var final = ended && result is { } r ? JsonSerializer.Deserialize<TaskRecord>(reader.ReadAll(r), ApiJson.Options) : null;
        return new JournalFacts(final, start, tree, stdout, stderr, dropped ?? None.Dropped);
    }

    /// <summary>A tree note, or <c>null</c> for one the mask made unreadable (a secret equal to digits of its pid).</summary>
    private static TreeIdentity? TreeOf(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonSerializer.Deserialize<TreeIdentity>(json, ApiJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A note of drops, or <c>null</c> for one the mask made unreadable (a secret equal to its digits): the one before it stands.</summary>
    private static DropNote? DropNoteOf(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonSerializer.Deserialize<DropNote>(json, ApiJson.Options);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>A start note; one the mask made unreadable (a secret equal to digits of its time) still says the run started.</summary>
    private static StartNote StartNoteOf(ReadOnlySpan<byte> json)
    {
        try
        {
            return JsonSerializer.Deserialize<StartNote>(json, ApiJson.Options) ?? new StartNote(null, null);
        }
        catch (JsonException)
        {
            return new StartNote(null, null);
        }
    }
}
