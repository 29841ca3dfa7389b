using System.Globalization;
using Corral.Server.Api;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace Corral.Server.Internal.Storage.Sqlite;

/// <summary>
/// Task records in SQLite (WAL). Reads open their own pooled connections, so they never wait behind a write nor
/// behind another process's lock. Writes go through one writer connection: queued, committed together in one
/// transaction (group commit: one fsync for every write that arrived meanwhile), and retried with backoff while the
/// database is busy, locked by another process, or full. Saves of one task's record coalesce to the newest. A batch
/// is fsynced (<c>synchronous=FULL</c>) only when a write in it must survive the machine; otherwise it is committed
/// to the WAL without an fsync (<c>NORMAL</c>), and the next fsync takes it along.
/// </summary>
internal sealed class SqliteTaskStore : ITaskStore
{
    private const int SqliteConstraint = 19;

    private readonly string _readConnectionString;
    private readonly SqliteConnection _writer;

    // The writer's statements, each prepared once: SQLite parses the text of every new command it runs, and a task
    // costs three or four writes. Only the write loop uses them.
    private readonly Dictionary<string, SqliteCommand> _statements = new(StringComparer.Ordinal);
    private readonly ResiliencePipeline _retry;
    private readonly TimeProvider _time;
    private readonly TimeSpan _insertTimeout;
    private readonly ILogger _logger;
    private readonly Lock _gate = new();
    private readonly List<WriteOp> _pending = [];
    private readonly Dictionary<string, SaveOp> _pendingSaves = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private TaskCompletionSource _work = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _closing;
    private int _failures;
    private bool _fullSync = true;

    public SqliteTaskStore(string path, TimeProvider time, TimeSpan insertTimeout, StorageGuard storage, ILogger<SqliteTaskStore> logger)
    {
        _time = time;
        _insertTimeout = insertTimeout;
        _logger = logger;
        if (!File.Exists(path))
        {
            // SQLite gives its -wal and -shm files the mode of the database file: make that 0600 before it exists.
            using var created = Files.OpenPrivate(path, FileMode.CreateNew);
        }

        _readConnectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, DefaultTimeout = 5 }.ToString();
        // One attempt waits at most a second for a lock; the retry loop does the rest.
        _writer = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false, DefaultTimeout = 1 }.ToString());
        _writer.Open();
        SqliteSchema.Migrate(_writer);
        _retry = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<SqliteException>().Handle<IOException>(),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(2),
                OnRetry = args =>
                {
                    if (args.Outcome.Exception is { } e && Files.IsOutOfSpace(e))
                        storage.ReportFull();
                    if (Interlocked.Increment(ref _failures) == 1)
                        _logger.LogWarning(args.Outcome.Exception, "The task database cannot be written; retrying until it can");
                    return default;
                },
            })
            .Build();
        _loop = Task.Run(WriteLoopAsync);
    }

    public async Task InsertAsync(NewTask task, Durability durability, CancellationToken cancellationToken)
    {
        var op = new InsertOp(task) { Durability = durability };
        Enqueue(op);
        try
        {
            await op.Done.WaitAsync(_insertTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException)
        {
            // Withdraw it unless it is being written right now; then that attempt decides.
            while (!TryWithdraw(op))
            {
                await Task.WhenAny(op.Done, Task.Delay(TimeSpan.FromMilliseconds(20), _time, CancellationToken.None)).ConfigureAwait(false);
                if (op.Done.IsCompleted)
                {
                    await op.Done.ConfigureAwait(false);
                    return;
                }
            }

            cancellationToken.ThrowIfCancellationRequested();
            throw new StoreException(StoreFailure.Unavailable, $"The task database could not be written within {_insertTimeout.TotalSeconds:0.#} s.", e);
        }
    }

    public Task SaveAsync(TaskRecord record, Durability durability)
    {
        lock (_gate)
        {
            if (_pendingSaves.TryGetValue(record.Id, out var waiting) && waiting.State == OpState.Pending)
            {
                waiting.Record = record; // the newest record is the one that must land
                if (durability > waiting.Durability)
                    waiting.Durability = durability;
                return waiting.Done;
            }
        }

        var op = new SaveOp(record) { Durability = durability };
        Enqueue(op);
        return op.Done;
    }

    public Task SaveTreeAsync(string id, TreeIdentity tree)
    {
        var op = new TreeOp(id, tree) { Durability = Durability.Server };
        Enqueue(op);
        return op.Done;
    }

    public async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        var op = new DeleteOp(id);
        Enqueue(op);
        await op.Done.WaitAsync(cancellationToken).ConfigureAwait(false);
        return op.Deleted;
    }

    public ValueTask<TaskRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        using var db = OpenReader();
        using var cmd = Command(db, "SELECT record_json FROM tasks WHERE id = $id");
        cmd.Parameters.AddWithValue("$id", id);
        return ValueTask.FromResult(cmd.ExecuteScalar() is string json ? ApiJson.Record(json) : null);
    }

    public ValueTask<IdempotentMatch?> FindByIdempotencyKeyAsync(string key, CancellationToken cancellationToken)
    {
        using var db = OpenReader();
        using var cmd = Command(db, "SELECT record_json, request_hash FROM tasks WHERE idempotency_key = $key");
        cmd.Parameters.AddWithValue("$key", key);
        using var reader = cmd.ExecuteReader();
        IdempotentMatch? match = reader.Read() ? new(ApiJson.Record(reader.GetString(0)), reader.IsDBNull(1) ? null : reader.GetString(1)) : null;
        return ValueTask.FromResult(match);
    }

    public ValueTask<TaskListing> ListAsync(TaskQuery query, CancellationToken cancellationToken)
    {
        using var db = OpenReader();
        using var cmd = Command(db, """
            SELECT seq, record_json FROM tasks
            WHERE ($status IS NULL OR status = $status) AND ($session IS NULL OR session_id = $session) AND ($before IS NULL OR seq < $before)
              AND ($agent IS NULL OR agent = $agent) AND ($node IS NULL OR json_extract(record_json, '$.node') = $node)
              AND ($text IS NULL OR instr(id, $text) > 0 OR instr(request_json, $text) > 0 OR instr(record_json, $text) > 0)
            ORDER BY seq DESC LIMIT $limit
            """);
        cmd.Parameters.AddWithValue("$agent", (object?)query.Agent ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$node", (object?)query.Node ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$text", (object?)query.Text ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$status", query.Status is { } s ? ApiJson.Name(s) : DBNull.Value);
        cmd.Parameters.AddWithValue("$session", (object?)query.SessionId ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$before", (object?)query.Before ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$limit", query.Limit);
        using var reader = cmd.ExecuteReader();
        var items = new List<TaskRecord>();
        long? last = null;
        long chars = 0;
        bool cut = false;
        // Rows are read one at a time: past the page's size, the next row's record is never loaded.
        while (reader.Read())
        {
            if (chars >= TaskQuery.PageChars)
            {
                cut = true;
                break;
            }

            last = reader.GetInt64(0);
            string json = reader.GetString(1);
            chars += json.Length;
            items.Add(ApiJson.Record(json));
        }

        return ValueTask.FromResult(new TaskListing(items, cut || items.Count == query.Limit ? last : null));
    }

    public ValueTask<Dictionary<TaskState, long>> CountByStatusAsync(CancellationToken cancellationToken)
    {
        using var db = OpenReader();
        using var cmd = Command(db, "SELECT status, count(*) FROM tasks GROUP BY status");
        using var reader = cmd.ExecuteReader();
        var counts = Enum.GetValues<TaskState>().ToDictionary(s => s, _ => 0L);
        while (reader.Read())
        {
            if (Enum.TryParse<TaskState>(reader.GetString(0), ignoreCase: true, out var state))
                counts[state] = reader.GetInt64(1);
        }

        return ValueTask.FromResult(counts);
    }

    public ValueTask<IReadOnlyList<UnfinishedTask>> ListUnfinishedAsync(CancellationToken cancellationToken)
    {
        using var db = OpenReader();
        using var cmd = Command(db, "SELECT record_json, request_json, tree_id, cgroup_path, pid FROM tasks WHERE status IN ('queued', 'running') ORDER BY seq");
        using var reader = cmd.ExecuteReader();
        var items = new List<UnfinishedTask>();
        while (reader.Read())
        {
            TreeIdentity? tree = reader.IsDBNull(2) ? null
                : new TreeIdentity(reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetString(3), reader.IsDBNull(4) ? 0 : reader.GetInt32(4));
            items.Add(new UnfinishedTask(ApiJson.Record(reader.GetString(0)), reader.GetString(1), tree));
        }

        return ValueTask.FromResult<IReadOnlyList<UnfinishedTask>>(items);
    }

    public ValueTask<IReadOnlyList<string>> ListEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken)
    {
        using var db = OpenReader();
        using var cmd = Command(db, "SELECT id FROM tasks WHERE ended_at IS NOT NULL AND ended_at < $cutoff ORDER BY ended_at LIMIT $limit");
        cmd.Parameters.AddWithValue("$cutoff", Timestamp(cutoff));
        cmd.Parameters.AddWithValue("$limit", limit);
        using var reader = cmd.ExecuteReader();
        var ids = new List<string>();
        while (reader.Read())
            ids.Add(reader.GetString(0));
        return ValueTask.FromResult<IReadOnlyList<string>>(ids);
    }

    /// <summary>Writes what is pending (for a bounded time), then closes. What could not be written is in the journals.</summary>
    public async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _closing = true;
            _work.TrySetResult();
        }

        if (await Task.WhenAny(_loop, Task.Delay(TimeSpan.FromSeconds(5), _time)).ConfigureAwait(false) != _loop)
        {
            _logger.LogError("Stopping with {Count} task database write(s) not done; the next start reconciles them from the task journals", _pending.Count);
            await _stop.CancelAsync().ConfigureAwait(false);
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        foreach (var statement in _statements.Values)
            statement.Dispose();
        _writer.Dispose();
        _stop.Dispose();
        SqliteConnection.ClearAllPools();
    }

    private void Enqueue(WriteOp op)
    {
        lock (_gate)
        {
            if (_closing)
                throw new ObjectDisposedException(nameof(SqliteTaskStore));
            _pending.Add(op);
            if (op is SaveOp save)
                _pendingSaves[save.Record.Id] = save;
            _work.TrySetResult();
        }
    }

    private bool TryWithdraw(WriteOp op)
    {
        lock (_gate)
        {
            if (op.State != OpState.Pending)
                return op.State == OpState.Withdrawn;
            op.State = OpState.Withdrawn;
            _pending.Remove(op);
            return true;
        }
    }

    private async Task WriteLoopAsync()
    {
        while (true)
        {
            Task work;
            lock (_gate)
            {
                if (_pending.Count == 0)
                {
                    if (_closing)
                        return;
                    _work = new(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                work = _pending.Count > 0 ? Task.CompletedTask : _work.Task;
            }

            await work.ConfigureAwait(false);
            try
            {
                await _retry.ExecuteAsync(static (self, _) => { self.WriteBatch(); return default; }, this, _stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
                return;
            }

            if (Interlocked.Exchange(ref _failures, 0) > 0)
                _logger.LogInformation("The task database is writable again");
        }
    }

    private void WriteBatch()
    {
        List<WriteOp> batch;
        lock (_gate)
        {
            batch = _pending.Where(p => p.State == OpState.Pending).ToList();
            foreach (var op in batch)
            {
                op.State = OpState.InFlight;
                if (op is SaveOp save && _pendingSaves.GetValueOrDefault(save.Record.Id) == save)
                    _pendingSaves.Remove(save.Record.Id);
            }
        }

        if (batch.Count == 0)
            return;
        try
        {
            bool fullSync = batch.Any(op => op.Durability == Durability.Machine);
            if (fullSync != _fullSync)
            {
                Statement(fullSync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", null).ExecuteNonQuery();
                _fullSync = fullSync;
            }

            using var tx = _writer.BeginTransaction(deferred: false);
            foreach (var op in batch)
                op.Execute(this, tx);
            tx.Commit();
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                foreach (var op in batch)
                {
                    if (op is InsertOp && Files.IsOutOfSpace(e))
                    {
                        // A new task is refused at once on a full disk; saves wait for space.
                        op.State = OpState.Done;
                        _pending.Remove(op);
                        op.Fail(new StoreException(StoreFailure.Full, "The disk is full.", e));
                    }
                    else
                    {
                        op.State = OpState.Pending;
                    }
                }
            }

            throw;
        }

        lock (_gate)
        {
            foreach (var op in batch)
            {
                op.State = OpState.Done;
                _pending.Remove(op);
            }
        }

        foreach (var op in batch)
            op.Complete();
    }

    private SqliteConnection OpenReader()
    {
        var db = new SqliteConnection(_readConnectionString);
        db.Open();
        return db;
    }

    /// <summary>The writer's prepared command for <paramref name="sql"/>, its parameters cleared, in <paramref name="tx"/>.</summary>
    private SqliteCommand Statement(string sql, SqliteTransaction? tx)
    {
        if (!_statements.TryGetValue(sql, out var cmd))
            _statements[sql] = cmd = Command(_writer, sql);
        cmd.Transaction = tx;
        cmd.Parameters.Clear();
        return cmd;
    }

    /// <summary>A command on <paramref name="db"/>, in <paramref name="tx"/> when given (shared by the stores of this database).</summary>
    internal static SqliteCommand Command(SqliteConnection db, string sql, SqliteTransaction? tx = null)
    {
        var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }

    private static string Timestamp(DateTimeOffset at) => at.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    private enum OpState
    {
        Pending,
        InFlight,
        Done,
        Withdrawn,
    }

    private abstract class WriteOp
    {
        private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private Exception? _failure;

        public OpState State { get; set; }

        public Durability Durability { get; set; } = Durability.Machine;

        public Task Done => _done.Task;

        public abstract void Execute(SqliteTaskStore store, SqliteTransaction tx);

        /// <summary>A failure of this write alone (it did not stop the others).</summary>
        protected void FailAfterCommit(Exception e) => _failure = e;

        public void Fail(Exception e) => _done.TrySetException(e);

        public void Complete()
        {
            if (_failure is not null)
                _done.TrySetException(_failure);
            else
                _done.TrySetResult();
        }
    }

    private sealed class InsertOp(NewTask task) : WriteOp
    {
        public override void Execute(SqliteTaskStore store, SqliteTransaction tx)
        {
            var r = task.Record;
            var cmd = store.Statement("""
                INSERT INTO tasks (id, status, agent, session_id, idempotency_key, request_hash, created_at, request_json, record_json)
                VALUES ($id, $status, $agent, $session, $key, $hash, $created, $request, $record)
                """, tx);
            cmd.Parameters.AddWithValue("$id", r.Id);
            cmd.Parameters.AddWithValue("$status", ApiJson.Name(r.Status));
            cmd.Parameters.AddWithValue("$agent", r.Agent);
            cmd.Parameters.AddWithValue("$session", (object?)r.SessionId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$key", (object?)r.IdempotencyKey ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$hash", task.RequestHash);
            cmd.Parameters.AddWithValue("$created", Timestamp(r.CreatedAt));
            cmd.Parameters.AddWithValue("$request", task.RequestJson);
            cmd.Parameters.AddWithValue("$record", ApiJson.Text(r));
            try
            {
                cmd.ExecuteNonQuery();
            }
            catch (SqliteException e) when (e.SqliteErrorCode == SqliteConstraint)
            {
                FailAfterCommit(new StoreException(StoreFailure.Conflict, "A task with this idempotency key exists.", e));
            }
        }
    }

    private sealed class SaveOp(TaskRecord record) : WriteOp
    {
        public TaskRecord Record { get; set; } = record;

        public override void Execute(SqliteTaskStore store, SqliteTransaction tx)
        {
            // A final record is never overwritten by a running one that arrives late.
            var cmd = store.Statement("""
                UPDATE tasks SET status = $status, session_id = $session, ended_at = $ended, record_json = $record
                WHERE id = $id AND ($final OR status IN ('queued', 'running'))
                """, tx);
            cmd.Parameters.AddWithValue("$final", Record.IsTerminal);
            cmd.Parameters.AddWithValue("$id", Record.Id);
            cmd.Parameters.AddWithValue("$status", ApiJson.Name(Record.Status));
            cmd.Parameters.AddWithValue("$session", (object?)Record.SessionId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$ended", Record.IsTerminal && Record.EndedAt is { } ended ? Timestamp(ended) : DBNull.Value);
            cmd.Parameters.AddWithValue("$record", ApiJson.Text(Record));
            cmd.ExecuteNonQuery();
        }
    }

    private sealed class TreeOp(string id, TreeIdentity tree) : WriteOp
    {
        public override void Execute(SqliteTaskStore store, SqliteTransaction tx)
        {
            var cmd = store.Statement("UPDATE tasks SET tree_id = $tree, cgroup_path = $cgroup, pid = $pid WHERE id = $id", tx);
            cmd.Parameters.AddWithValue("$id", id);
            cmd.Parameters.AddWithValue("$tree", tree.TreeId);
            cmd.Parameters.AddWithValue("$cgroup", (object?)tree.CgroupPath ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$pid", tree.Pid);
            cmd.ExecuteNonQuery();
        }
    }

    private sealed class DeleteOp(string id) : WriteOp
    {
        public bool Deleted { get; private set; }

        public override void Execute(SqliteTaskStore store, SqliteTransaction tx)
        {
            var cmd = store.Statement("DELETE FROM tasks WHERE id = $id", tx);
            cmd.Parameters.AddWithValue("$id", id);
            Deleted = cmd.ExecuteNonQuery() > 0;
            var hooks = store.Statement("DELETE FROM webhook_deliveries WHERE task_id = $id", tx);
            hooks.Parameters.AddWithValue("$id", id);
            hooks.ExecuteNonQuery();
        }
    }
}
