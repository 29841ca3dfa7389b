using Corral.Server.Api;
using Corral.Server.Internal;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Corral.Server.Internal.Storage.Postgres;
using Corral.Server.Tests.Fleet;
using Corral.Testing.Support.Postgres;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Corral.Server.Tests.Storage;

/// <summary>Journals in a real PostgreSQL, against the other nodes of a fleet that take a task over.</summary>
public sealed class PostgresJournalStoreTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IAsyncDisposable
{
    private readonly List<IAsyncDisposable> _disposables = [];
    private readonly string _data = Directory.CreateTempSubdirectory("corral-pgjournal-").FullName;

    [Fact(Timeout = 60_000)]
    public async Task An_owner_chunk_written_while_another_node_reaps_the_task_waits_for_the_reap_and_is_refused_so_the_reaper_read_the_whole_journal()
    {
        if (PostgresCluster.Unavailable is { } why)
            Assert.Skip(why);
        var db = Source(await postgres.Cluster.CreateDatabaseAsync());
        await PostgresSchema.MigrateAsync(db, TestContext.Current.CancellationToken);
        var owner = Store(db, "a");
        var reaper = Store(db, "b");
        var record = new TaskRecord { Id = "t1", Status = TaskState.Running, Agent = "command", CreatedAt = DateTimeOffset.UtcNow, Node = "a" };
        // A task a runs under epoch 1, whose lease has just run out (a is slow, not dead).
        await using (var insert = db.CreateCommand("""
            INSERT INTO tasks (id, status, agent, created_at, request_json, record_json, node, epoch, lease_until)
            VALUES ('t1', 'running', 'command', now(), '{}', $1, 'a', 1, now() - interval '1 second')
            """))
        {
            insert.Parameters.Add(new NpgsqlParameter { Value = ApiJson.Text(record) });
            await insert.ExecuteNonQueryAsync(TestContext.Current.CancellationToken);
        }

        owner.Own("t1", 1);
        var journals = new PostgresJournalStore(db, db, owner, new PostgresNotifications(db, TimeProvider.System, NullLogger<PostgresNotifications>.Instance),
            new ServerPaths(_data, Path.Combine(_data, "workspaces")), TimeSpan.FromSeconds(5));
        using var writer = journals.Open("t1", 1);
        writer.AddEvent("task.status", new { status = TaskState.Running });
        writer.Commit();

        // b reaps the task. While b holds it (it has read the journal to learn whether the task ended), a writes its end.
        Task? late = null;
        bool landedDuringReap = false;
        var reaped = await reaper.ReapAsync((r, _) =>
        {
            late = Task.Run(() =>
            {
                writer.AddEvent("task.end", new { status = TaskState.Succeeded });
                writer.Commit();
            });
            landedDuringReap = late.Wait(TimeSpan.FromSeconds(2));
            return r with { Status = TaskState.Interrupted, EndedAt = DateTimeOffset.UtcNow };
        }, 10, TestContext.Current.CancellationToken);

        Assert.Single(reaped);
        Assert.False(landedDuringReap, "a's chunk landed in the journal after b had read it, before b's end was committed");
        var refused = await Assert.ThrowsAsync<JournalFencedException>(() => late!);
        Assert.Contains("t1", refused.Message);
        await using var count = db.CreateCommand("SELECT count(*) FROM journal WHERE task_id = 't1'");
        Assert.Equal(2L, await count.ExecuteScalarAsync(TestContext.Current.CancellationToken)); // the header and the first commit
    }

    private NpgsqlDataSource Source(string connection)
    {
        var source = NpgsqlDataSource.Create(connection);
        _disposables.Add(source);
        return source;
    }

    private PostgresTaskStore Store(NpgsqlDataSource db, string node)
    {
        var store = new PostgresTaskStore(db, node, TimeProvider.System, TimeSpan.FromSeconds(5), NullLogger<PostgresTaskStore>.Instance);
        _disposables.Add(store);
        return store;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var disposable in Enumerable.Reverse(_disposables))
            await disposable.DisposeAsync();
        Directory.Delete(_data, recursive: true);
    }
}
