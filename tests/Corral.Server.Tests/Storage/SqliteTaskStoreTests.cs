using System.Diagnostics;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Corral.Server.Tests.Storage;

/// <summary>The SQLite store on a real database file: durable writes that outlast a lock, reads that never wait for one.</summary>
public sealed class SqliteTaskStoreTests : IAsyncDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("corral-store-").FullName;

    private string Database => Path.Combine(_dir, "corral.db");

    public ValueTask DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, true);
        return default;
    }

    private SqliteTaskStore Open(TimeSpan? insertTimeout = null)
    {
        var paths = new ServerPaths(_dir, Path.Combine(_dir, "workspaces"));
        var guard = new StorageGuard(paths, Options.Create(new CorralOptions { DiskReserveMb = 0, MinFreeDiskMb = 0 }), TimeProvider.System, NullLogger<StorageGuard>.Instance);
        return new SqliteTaskStore(Database, TimeProvider.System, insertTimeout ?? TimeSpan.FromSeconds(10), guard, NullLogger<SqliteTaskStore>.Instance);
    }

    private static TaskRecord Record(string id, TaskState status = TaskState.Queued, string? key = null) =>
        new() { Id = id, Status = status, Agent = "command", CreatedAt = DateTimeOffset.UtcNow, IdempotencyKey = key };

    /// <summary>Another connection holding the database's write lock, as another process would.</summary>
    private SqliteConnection Lock()
    {
        var other = new SqliteConnection($"Data Source={Database};Pooling=False");
        other.Open();
        using var begin = other.CreateCommand();
        begin.CommandText = "BEGIN EXCLUSIVE";
        begin.ExecuteNonQuery();
        return other;
    }

    [Fact(Timeout = 60_000)]
    public async Task A_save_during_a_lock_lands_when_the_lock_goes_and_reads_do_not_wait_meanwhile()
    {
        await using var store = Open();
        await store.InsertAsync(new NewTask(Record("tsk_a"), "{}", "h"), Durability.Machine, default);
        await store.InsertAsync(new NewTask(Record("tsk_b", TaskState.Succeeded), "{}", "h"), Durability.Machine, default);

        var other = Lock();
        var save = store.SaveAsync(Record("tsk_a", TaskState.Succeeded) with { EndedAt = DateTimeOffset.UtcNow }, Durability.Machine);
        await Task.Delay(1500, TestContext.Current.CancellationToken); // several retries' worth
        Assert.False(save.IsCompleted);

        var clock = Stopwatch.StartNew();
        Assert.Equal(TaskState.Succeeded, (await store.GetAsync("tsk_b", default))!.Status);
        Assert.Equal(2, (await store.ListAsync(new TaskQuery(null, null, 10, null), default)).Items.Count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1), $"reads took {clock.Elapsed} behind the lock");

        other.Dispose(); // commits nothing: the lock goes
        await save.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        Assert.Equal(TaskState.Succeeded, (await store.GetAsync("tsk_a", default))!.Status);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_insert_that_cannot_be_written_in_time_is_withdrawn_and_leaves_no_row()
    {
        await using var store = Open(insertTimeout: TimeSpan.FromMilliseconds(500));
        using (Lock())
        {
            var refused = await Assert.ThrowsAsync<StoreException>(() => store.InsertAsync(new NewTask(Record("tsk_late"), "{}", "h"), Durability.Machine, default));
            Assert.Equal(StoreFailure.Unavailable, refused.Failure);
        }

        await store.InsertAsync(new NewTask(Record("tsk_next"), "{}", "h"), Durability.Machine, default);
        Assert.Null(await store.GetAsync("tsk_late", default));
        Assert.NotNull(await store.GetAsync("tsk_next", default));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_second_task_with_the_same_idempotency_key_is_a_conflict_and_others_in_its_batch_land()
    {
        await using var store = Open();
        await store.InsertAsync(new NewTask(Record("tsk_1", key: "k"), "{}", "h1"), Durability.Machine, default);
        var dup = store.InsertAsync(new NewTask(Record("tsk_2", key: "k"), "{}", "h2"), Durability.Machine, default);
        var other = store.InsertAsync(new NewTask(Record("tsk_3"), "{}", "h3"), Durability.Machine, default);
        Assert.Equal(StoreFailure.Conflict, (await Assert.ThrowsAsync<StoreException>(() => dup)).Failure);
        await other;
        Assert.Equal("h1", (await store.FindByIdempotencyKeyAsync("k", default))!.RequestHash);
    }

    [Fact(Timeout = 60_000)]
    public async Task Unfinished_expired_and_deleted_rows_are_found_as_asked()
    {
        await using var store = Open();
        var old = DateTimeOffset.UtcNow.AddDays(-30);
        await store.InsertAsync(new NewTask(Record("tsk_old"), "{}", "h"), Durability.Machine, default);
        await store.SaveAsync(Record("tsk_old", TaskState.Succeeded) with { EndedAt = old }, Durability.Machine);
        await store.InsertAsync(new NewTask(Record("tsk_new"), "{}", "h"), Durability.Machine, default);
        await store.SaveAsync(Record("tsk_new", TaskState.Failed) with { EndedAt = DateTimeOffset.UtcNow }, Durability.Machine);
        await store.InsertAsync(new NewTask(Record("tsk_run"), """{"agent":"command"}""", "h"), Durability.Machine, default);
        await store.SaveTreeAsync("tsk_run", new TreeIdentity(Guid.NewGuid().ToString("N"), null, 42));

        Assert.Equal(["tsk_old"], await store.ListEndedBeforeAsync(DateTimeOffset.UtcNow.AddDays(-14), 10, default));
        var unfinished = Assert.Single(await store.ListUnfinishedAsync(default));
        Assert.Equal(42, unfinished.Tree!.Pid);
        Assert.Equal("""{"agent":"command"}""", unfinished.RequestJson);
        Assert.True(await store.DeleteAsync("tsk_old", default));
        Assert.False(await store.DeleteAsync("tsk_old", default));
        Assert.Null(await store.GetAsync("tsk_old", default));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_database_of_the_first_version_is_migrated_in_place()
    {
        using (var db = new SqliteConnection($"Data Source={Database};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = """
                CREATE TABLE tasks (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, status TEXT NOT NULL, agent TEXT NOT NULL,
                    session_id TEXT, idempotency_key TEXT UNIQUE, request_hash TEXT, created_at TEXT NOT NULL, tree_id TEXT, cgroup_path TEXT,
                    pid INTEGER, request_json TEXT NOT NULL, record_json TEXT NOT NULL);
                INSERT INTO tasks (id, status, agent, created_at, request_json, record_json) VALUES ('tsk_v1', 'succeeded', 'command', '2026-01-01',
                    '{}', '{"id":"tsk_v1","status":"succeeded","agent":"command","createdAt":"2026-01-01T00:00:00+00:00","endedAt":"2026-01-01T00:00:01+00:00"}');
                """;
            cmd.ExecuteNonQuery();
        }

        await using var store = Open();
        Assert.Equal(TaskState.Succeeded, (await store.GetAsync("tsk_v1", default))!.Status);
        Assert.Equal(["tsk_v1"], await store.ListEndedBeforeAsync(DateTimeOffset.UtcNow, 10, default));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_new_database_and_its_wal_are_private_to_the_server()
    {
        await using var store = Open();
        await store.InsertAsync(new NewTask(Record("tsk_p"), "{}", "h"), Durability.Machine, default);
        foreach (string file in new[] { Database, Database + "-wal", Database + "-shm" })
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_record_nested_past_what_requests_may_be_is_stored_and_read_back()
    {
        // Requests are read at most 64 levels deep; a record that holds one is deeper, and so may one of an older version.
        var metadata = new System.Text.Json.Nodes.JsonObject();
        for (int i = 0; i < 100; i++)
            metadata = new System.Text.Json.Nodes.JsonObject { ["a"] = metadata };
        await using var store = Open();
        await store.InsertAsync(new NewTask(Record("tsk_deep", TaskState.Succeeded) with { Metadata = metadata }, "{}", "h"), Durability.Server, default);
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(metadata, (await store.GetAsync("tsk_deep", default))!.Metadata));
        Assert.Single((await store.ListAsync(new TaskQuery(null, null, 10, null), default)).Items);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_page_of_large_records_ends_at_its_size_and_the_next_page_starts_after_it()
    {
        await using var store = Open();
        await PagesEndAtTheirSizeAsync(store);
    }

    /// <summary>
    /// Five records of half a page each: the pages hold two, two and one, and following their cursors lists all five
    /// once, newest first (a page of 500 such records would have been 5 GB).
    /// </summary>
    internal static async Task PagesEndAtTheirSizeAsync(ITaskStore store)
    {
        var text = new string('x', TaskQuery.PageChars / 2);
        for (int i = 0; i < 5; i++)
            await store.InsertAsync(new NewTask(Record($"tsk_{i}", TaskState.Succeeded) with { Result = new Corral.Agents.AgentResult { Text = text } }, "{}", "h"), Durability.Server, default);

        var pages = new List<string[]>();
        long? before = null;
        do
        {
            var page = await store.ListAsync(new TaskQuery(null, null, 500, before), default);
            pages.Add([.. page.Items.Select(r => r.Id)]);
            before = page.Next;
        }
        while (before is not null && pages.Count < 10);

        Assert.Equal([["tsk_4", "tsk_3"], ["tsk_2", "tsk_1"], ["tsk_0"]], pages);
    }
}
