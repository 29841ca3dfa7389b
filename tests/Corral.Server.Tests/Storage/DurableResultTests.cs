using System.Diagnostics;
using System.Net;
using Corral.Server.Tests.Support;
using Microsoft.Data.Sqlite;

namespace Corral.Server.Tests.Storage;

/// <summary>A produced result is never lost: not to a database another process has locked, not to a crash in the meantime.</summary>
public sealed class DurableResultTests
{
    private static string? StoredStatus(string database, string id)
    {
        using var db = new SqliteConnection($"Data Source={database};Mode=ReadOnly;Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = "SELECT status FROM tasks WHERE id = $id";
        cmd.Parameters.AddWithValue("$id", id);
        return cmd.ExecuteScalar() as string;
    }

    [Fact(Timeout = 240_000)]
    public async Task A_result_produced_while_another_process_locks_the_database_for_34_s_ends_succeeded_also_after_a_restart()
    {
        string data = Directory.CreateTempSubdirectory("corral-lock-").FullName;
        string database = Path.Combine(data, "corral.db");
        ServerProcess? first = null, second = null, third = null;
        try
        {
            first = await ServerProcess.StartAsync(data);
            var other = await first.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "other" } }, wait: 60);
            Assert.Equal(HttpStatusCode.OK, other.Status);
            var created = await first.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "sleep 2; echo R" } });
            Assert.Equal(HttpStatusCode.Accepted, created.Status);
            string id = created.Id!;
            await first.Http.WaitForAsync(id, t => t["status"]!.GetValue<string>() == "running", TimeSpan.FromSeconds(30));
            await Proc.WaitForAsync(() => StoredStatus(database, id) == "running", TimeSpan.FromSeconds(30), "the row to say running");

            using var locker = await ServerProcess.HoldDatabaseLockAsync(database, TimeSpan.FromSeconds(34));
            var lockedAt = Stopwatch.StartNew();

            // The task ends during the lock: its record says so at once, with its result.
            var ended = await first.Http.WaitForEndAsync(id, TimeSpan.FromSeconds(20));
            Assert.Equal("succeeded", ended["status"]!.GetValue<string>());
            Assert.Equal("R\n", ended["result"]!["text"]!.GetValue<string>());
            Assert.True(lockedAt.Elapsed < TimeSpan.FromSeconds(20), "the end waited for the lock");

            // Reads of other tasks do not wait behind the lock.
            foreach (string path in new[] { $"/v1/tasks/{other.Id}", "/v1/tasks?limit=10", $"/v1/tasks/{id}" })
            {
                var clock = Stopwatch.StartNew();
                Assert.Equal(HttpStatusCode.OK, (await first.Http.SendAsync(HttpMethod.Get, path)).Status);
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"GET {path} took {clock.Elapsed} during the lock");
            }

            Assert.Equal("running", StoredStatus(database, id)); // the row could not be written yet: only the journal has the end

            // A crash now, and a start while the lock is still held: the end comes back from the journal.
            first.Kill();
            second = await ServerProcess.StartAsync(data);
            var recovered = (await second.Http.GetTaskAsync(id)).Body!;
            Assert.Equal("succeeded", recovered["status"]!.GetValue<string>());
            Assert.Equal("R\n", recovered["result"]!["text"]!.GetValue<string>());
            Assert.True(lockedAt.Elapsed < TimeSpan.FromSeconds(34), $"the lock ended before the restart was checked ({lockedAt.Elapsed})");
            var events = await second.Http.ReadEventsAsync(id);
            Assert.Single(events, e => e.Name == "task.end");

            // When the lock goes, the row catches up; a third start finds it there.
            await locker.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
            await Proc.WaitForAsync(() => StoredStatus(database, id) == "succeeded", TimeSpan.FromSeconds(30), "the row to be written after the lock");
            second.Kill();
            third = await ServerProcess.StartAsync(data);
            var stored = (await third.Http.GetTaskAsync(id)).Body!;
            Assert.Equal("succeeded", stored["status"]!.GetValue<string>());
            Assert.Equal("R\n", stored["result"]!["text"]!.GetValue<string>());
        }
        finally
        {
            first?.Kill();
            second?.Kill();
            third?.Kill();
            SqliteConnection.ClearAllPools();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_wait_that_ends_while_the_row_cannot_be_made_durable_answers_503_near_its_deadline_rather_than_hanging()
    {
        string data = Directory.CreateTempSubdirectory("corral-lock-wait-").FullName;
        string database = Path.Combine(data, "corral.db");
        ServerProcess? server = null;
        try
        {
            server = await ServerProcess.StartAsync(data);
            var post = server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } }, wait: 10);
            await Proc.WaitForAsync(async () => (await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks?status=running")).Body!["items"]!.AsArray().Count == 1,
                TimeSpan.FromSeconds(30), "the task to run");
            // Another process locks the database for 25 s while the wait runs out: the row cannot be made durable.
            using var locker = await ServerProcess.HoldDatabaseLockAsync(database, TimeSpan.FromSeconds(25));
            var clock = Stopwatch.StartNew();
            var answer = await post;
            // Before, the answer waited for the lock to go (25 s), past the 10 s the client asked for.
            Assert.Equal(HttpStatusCode.ServiceUnavailable, answer.Status);
            Assert.Equal("storage_unavailable", answer.Body!["code"]!.GetValue<string>());
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"the answer took {clock.Elapsed}");
            Assert.NotNull(answer.Message.Headers.Location);
        }
        finally
        {
            server?.Kill();
            SqliteConnection.ClearAllPools();
            Directory.Delete(data, true);
        }
    }
}
