using Corral.Server.Internal.Storage;

namespace Corral.Server.Tests;

/// <summary>The event log after a crash mid-append.</summary>
public sealed class TaskLogTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("corral-log-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void A_torn_last_line_is_skipped_and_numbering_continues_after_the_last_whole_event()
    {
        using (var log = new TaskLog(_dir))
        {
            Assert.Equal(1, log.AppendEvent("task.status", new { status = "queued" }));
            Assert.Equal(2, log.AppendEvent("agent.text", new { text = "hi" }));
        }

        // A crash in the middle of the third append.
        File.AppendAllText(Path.Combine(_dir, TaskLog.EventsFile), """{"id":3,"event":"agent.te""");

        using (var log = new TaskLog(_dir))
        {
            Assert.Equal(2, log.LastId);
            Assert.Equal(3, log.AppendEvent("task.end", new { status = "interrupted" }));
        }

        using var reader = new EventLogReader(Path.Combine(_dir, TaskLog.EventsFile), 0);
        var events = reader.ReadAvailable();
        Assert.Equal([(1L, "task.status"), (2L, "agent.text"), (3L, "task.end")], events.Select(e => (e.Id, e.Name)));
        Assert.Equal("""{"status":"interrupted"}""", events[2].Data);
    }

    [Fact]
    public void The_reader_leaves_a_line_being_written_for_the_next_read()
    {
        string path = Path.Combine(_dir, TaskLog.EventsFile);
        File.WriteAllText(path, """{"id":1,"event":"a","data":{}}""" + "\n" + """{"id":2,"event":"b","da""");
        using var reader = new EventLogReader(path, 0);
        Assert.Equal([1L], reader.ReadAvailable().Select(e => e.Id));
        File.AppendAllText(path, """ta":{}}""" + "\n");
        Assert.Equal([2L], reader.ReadAvailable().Select(e => e.Id));
        Assert.Empty(reader.ReadAvailable());
    }
}
