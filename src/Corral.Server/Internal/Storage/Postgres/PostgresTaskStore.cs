using System.Collections.Concurrent;
using Corral.Server.Api;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;
using Polly;
using Polly.Retry;

namespace Corral.Server.Internal.Storage.Postgres;

/// <summary>A task a node has claimed: its row as the claim left it, under the epoch that fences it.</summary>
internal sealed record ClaimedTask(TaskRecord Record, string RequestJson, long Epoch);

/// <summary>A running task this node holds, as a lease renewal found it: still its own (under that epoch), and whether someone asked to cancel it.</summary>
internal sealed record HeldTask(string Id, long Epoch, bool CancelRequested);

/// <summary>A task left running by a node whose lease ran out.</summary>
internal sealed record ExpiredTask(TaskRecord Record, long Epoch, TreeIdentity? Tree, string? Node);

/// <summary>
/// Task records in PostgreSQL, shared by every node of a fleet: the queue (claimed with <c>FOR UPDATE SKIP LOCKED</c>),
/// leases renewed on the database's clock, and an epoch per task that fences every write of its owner, so a node
/// that lost its lease cannot overwrite what another decided. Transient failures (a restart of the database, a cut
/// connection) are retried with backoff; a final record is never given up.
/// </summary>
internal sealed class PostgresTaskStore : ITaskStore
{
    private readonly NpgsqlDataSource _db;
    private readonly ResiliencePipeline _retry;
    private readonly TimeSpan _insertTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConcurrentDictionary<string, long> _owned = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _closing = new();
    private int _failures;

    public PostgresTaskStore(NpgsqlDataSource db, string node, TimeProvider time, TimeSpan insertTimeout, ILogger<PostgresTaskStore> logger)
    {
        _db = db;
        Node = node;
        _time = time;
        _insertTimeout = insertTimeout;
        _logger = logger;
        _retry = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>(IsTransient).Handle<TimeoutException>(),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(50),
                MaxDelay = TimeSpan.FromSeconds(2),
                OnRetry = args =>
                {
                    if (Interlocked.Increment(ref _failures) == 1)
                        _logger.LogWarning(args.Outcome.Exception, "The task database cannot be reached; retrying until it can");
                    return default;
                },
            })
            .Build();
    }

    public NpgsqlDataSource DataSource => _db;

    /// <summary>This node's name in the fleet.</summary>
    public string Node { get; }

    /// <summary>
    /// This node's writes to a task another node took are refused from now on (that node decides its end), and its
    /// lease is no longer renewed. Not for a node that fenced itself because it could not renew: it still owns its
    /// tasks, and its final records land unless another node ended them meanwhile (the epoch tells).
    /// </summary>
    public void Fence(string id) => _owned[id] = -1;

    /// <summary>Remembers the epoch this node holds a task under: its writes to that task are fenced by it.</summary>
    public void Own(string id, long epoch) => _owned[id] = epoch;

    /// <summary>This node is done with a task (ended, or fenced).</summary>
    public void Disown(string id) => _owned.TryRemove(id, out _);

    public long? EpochOf(string id) => _owned.TryGetValue(id, out long epoch) ? epoch : null;

    public async Task InsertAsync(NewTask task, Durability durability, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_insertTimeout);
        try
        {
            await RunAsync(async (db, ct) =>
            {
                var r = task.Record;
                await using var cmd = db.CreateCommand("""
                    INSERT INTO tasks (id, status, agent, session_id, session_key, idempotency_key, request_hash, created_at, request_json, record_json, affinity, memory_bytes)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                    """);
                Add(cmd, r.Id, ApiJson.Name(r.Status), r.Agent, r.SessionId, task.SessionKey, r.IdempotencyKey, task.RequestHash, r.CreatedAt.UtcDateTime,
                    task.RequestJson, ApiJson.Text(r), task.Affinity, task.MemoryBytes);
                await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                return 0;
            }, deadline.Token).ConfigureAwait(false);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == "tasks_id_key")
        {
            // Ids are new: the row is this insert's own, committed by an attempt whose answer the connection lost (a restart).
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
        {
            throw e.ConstraintName == "tasks_session_active"
                ? new StoreException(StoreFailure.SessionBusy, "The session has a queued or running task.", e)
                : new StoreException(StoreFailure.Conflict, "A task with this idempotency key exists.", e);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new StoreException(StoreFailure.Unavailable, $"The task database could not be written within {_insertTimeout.TotalSeconds:0.#} s.", e);
        }
    }

    public Task SaveAsync(TaskRecord record, Durability durability) => RunAsync(async (db, ct) =>
    {
        // The owner's writes carry its epoch: once another node has decided the task's end, they change nothing. The
        // owner's final record comes after its tree finished: nothing of it is left to kill.
        long? epoch = EpochOf(record.Id);
        await using var cmd = db.CreateCommand("""
            UPDATE tasks SET status = $2, session_id = $3, ended_at = $4, record_json = $5,
                session_key = CASE WHEN $2 IN ('queued', 'running') THEN session_key END,
                leftovers_cleared = leftovers_cleared OR ($7 AND $6::bigint IS NOT NULL)
            WHERE id = $1 AND ($6::bigint IS NULL OR epoch = $6) AND ($7 OR status IN ('queued', 'running'))
            """);
        Add(cmd, record.Id, ApiJson.Name(record.Status), record.SessionId, record.IsTerminal ? record.EndedAt?.UtcDateTime : null, ApiJson.Text(record), epoch, record.IsTerminal);
        if (await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 0 && epoch is not null)
            throw new StoreException(StoreFailure.Fenced, $"Task {record.Id} is no longer this node's: its lease was lost.");
        return 0;
    }, _closing.Token);

    public Task SaveTreeAsync(string id, TreeIdentity tree) => RunAsync(async (db, ct) =>
    {
        await using var cmd = db.CreateCommand("UPDATE tasks SET tree_id = $2, cgroup_path = $3, pid = $4, uid = $5 WHERE id = $1 AND ($6::bigint IS NULL OR epoch = $6)");
        Add(cmd, id, tree.TreeId, tree.CgroupPath, tree.Pid, tree.Uid, EpochOf(id));
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        return 0;
    }, _closing.Token);

    public async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken) => await RunAsync(async (db, ct) =>
    {
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(Command("DELETE FROM journal WHERE task_id = $1", id));
        batch.BatchCommands.Add(Command("DELETE FROM webhook_deliveries WHERE task_id = $1", id));
        batch.BatchCommands.Add(Command("DELETE FROM tasks WHERE id = $1", id));
        await using var reader = await batch.ExecuteReaderAsync(ct).ConfigureAwait(false);
        return reader.RecordsAffected > 0;
    }, cancellationToken).ConfigureAwait(false);

    public async ValueTask<TaskRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        await QueryOneAsync("SELECT record_json FROM tasks WHERE id = $1", r => ApiJson.Record(r.GetString(0)), cancellationToken, id).ConfigureAwait(false);

    public async ValueTask<IdempotentMatch?> FindByIdempotencyKeyAsync(string key, CancellationToken cancellationToken) =>
        await QueryOneAsync("SELECT record_json, request_hash FROM tasks WHERE idempotency_key = $1",
            r => new IdempotentMatch(ApiJson.Record(r.GetString(0)), r.IsDBNull(1) ? null : r.GetString(1)), cancellationToken, key).ConfigureAwait(false);

    public async ValueTask<TaskListing> ListAsync(TaskQuery query, CancellationToken cancellationToken)
    {
        // The page is cut to its size in the database, so records past it never cross the network (octet_length reads
        // a stored value's size without decompressing it; bytes stand in for characters).
        var rows = await QueryAsync("""
            SELECT seq, record_json, matched FROM (
              SELECT seq, record_json, count(*) OVER () AS matched,
                coalesce(sum(octet_length(record_json)) OVER (ORDER BY seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS chars_before
              FROM (
                SELECT seq, record_json FROM tasks
                WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR session_id = $2) AND ($3::bigint IS NULL OR seq < $3)
                  AND ($4::text IS NULL OR agent = $4) AND ($7::text IS NULL OR node = $7)
                  AND ($5::text IS NULL OR strpos(id, $5) > 0 OR strpos(request_json, $5) > 0 OR strpos(record_json, $5) > 0)
                ORDER BY seq DESC LIMIT $6) AS page) AS sized
            WHERE chars_before < $8
            ORDER BY seq DESC
            """, r => (Seq: r.GetInt64(0), Record: ApiJson.Record(r.GetString(1)), Matched: r.GetInt64(2)), cancellationToken,
            query.Status is { } s ? ApiJson.Name(s) : null, query.SessionId, query.Before, query.Agent, query.Text, query.Limit, query.Node,
            (long)TaskQuery.PageChars).ConfigureAwait(false);
        bool more = rows.Count > 0 && (rows.Count < rows[0].Matched || rows[0].Matched == query.Limit);
        return new TaskListing([.. rows.Select(r => r.Record)], more ? rows[^1].Seq : null);
    }

    public async ValueTask<Dictionary<TaskState, long>> CountByStatusAsync(CancellationToken cancellationToken)
    {
        var counts = Enum.GetValues<TaskState>().ToDictionary(s => s, _ => 0L);
        foreach (var (status, n) in await QueryAsync("SELECT status, count(*) FROM tasks GROUP BY status", r => (r.GetString(0), r.GetInt64(1)), cancellationToken).ConfigureAwait(false))
        {
            if (Enum.TryParse<TaskState>(status, ignoreCase: true, out var state))
                counts[state] = n;
        }

        return counts;
    }

    /// <summary>
    /// What a previous process of this node left: the tasks it was running and still holds (the queue is the fleet's,
    /// not the node's). Each is owned again under its epoch, so that settling it is fenced like any other write.
    /// </summary>
    public async ValueTask<IReadOnlyList<UnfinishedTask>> ListUnfinishedAsync(CancellationToken cancellationToken)
    {
        var rows = await QueryAsync("SELECT record_json, request_json, tree_id, cgroup_path, pid, uid, epoch FROM tasks WHERE status = 'running' AND node = $1 ORDER BY seq",
            r => (Task: new UnfinishedTask(ApiJson.Record(r.GetString(0)), r.GetString(1), Tree(r, 2)), Epoch: r.GetInt64(6)), cancellationToken, Node).ConfigureAwait(false);
        foreach (var (task, epoch) in rows)
            Own(task.Record.Id, epoch);
        return [.. rows.Select(r => r.Task)];
    }

    public async ValueTask<IReadOnlyList<string>> ListEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken) =>
        await QueryAsync("SELECT id FROM tasks WHERE ended_at IS NOT NULL AND ended_at < $1 ORDER BY ended_at LIMIT $2",
            r => r.GetString(0), cancellationToken, cutoff.UtcDateTime, limit).ConfigureAwait(false);

    /// <summary>How many tasks wait in the fleet's queue.</summary>
    public async Task<long> QueuedCountAsync(CancellationToken cancellationToken) =>
        await QueryOneAsync("SELECT count(*) FROM tasks WHERE status = 'queued'", r => r.GetInt64(0), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Claims the oldest queued task this node may run (no affinity or its own, memory limit within
    /// <paramref name="fitBytes"/>): it becomes running here, under a new epoch, with a lease on the database's clock.
    /// </summary>
    public async Task<ClaimedTask?> ClaimAsync(long fitBytes, TimeSpan lease, CancellationToken cancellationToken) =>
        await RunAsync(async (db, ct) =>
        {
            await using var cmd = db.CreateCommand("""
                UPDATE tasks SET status = 'running', node = $1, epoch = epoch + 1, lease_until = now() + $3,
                    record_json = (record_json::jsonb || jsonb_build_object('status', 'running', 'node', $1::text))::text
                WHERE id = (SELECT id FROM tasks WHERE status = 'queued' AND (affinity IS NULL OR affinity = $1)
                            AND coalesce(memory_bytes, 0) <= $2 AND NOT cancel_requested
                            ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT 1)
                RETURNING record_json, request_json, epoch
                """);
            Add(cmd, Node, fitBytes, lease);
            await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await reader.ReadAsync(ct).ConfigureAwait(false))
                return null;
            var claimed = new ClaimedTask(ApiJson.Record(reader.GetString(0)), reader.GetString(1), reader.GetInt64(2));
            Own(claimed.Record.Id, claimed.Epoch);
            return claimed;
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Renews this node's lease (it is alive) and those of the running tasks it owns, each under the epoch it owns it
    /// by (with <paramref name="inherited"/>, at start, also every task a previous process of this node left running,
    /// which recovery takes over next); returns what it still holds. A task this node gave up is not renewed: its
    /// lease lapses and another node ends it. One attempt, no retries: the caller counts the time since the last
    /// success to fence itself.
    /// </summary>
    public async Task<IReadOnlyList<HeldTask>> RenewAsync(TimeSpan lease, bool inherited, CancellationToken cancellationToken)
    {
        var owned = _owned.Where(o => o.Value >= 0).ToArray();
        await using var batch = _db.CreateBatch();
        batch.BatchCommands.Add(Command("""
            INSERT INTO nodes (id, started_at, lease_until) VALUES ($1, now(), now() + $2)
            ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until
            """, Node, lease));
        batch.BatchCommands.Add(Command("""
            UPDATE tasks SET lease_until = now() + $2
            WHERE node = $1 AND status = 'running' AND ($3 OR (id, epoch) IN (SELECT * FROM unnest($4::text[], $5::bigint[])))
            RETURNING id, epoch, cancel_requested
            """, Node, lease, inherited, owned.Select(o => o.Key).ToArray(), owned.Select(o => o.Value).ToArray()));
        await using var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var held = new List<HeldTask>();
        do
        {
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                held.Add(new HeldTask(reader.GetString(0), reader.GetInt64(1), reader.GetBoolean(2)));
        }
        while (await reader.NextResultAsync(cancellationToken).ConfigureAwait(false));
        return held;
    }

    /// <summary>This node leaves the fleet (a clean stop).</summary>
    public Task LeaveAsync(CancellationToken cancellationToken) => RunAsync(async (db, ct) =>
    {
        await using var cmd = db.CreateCommand("DELETE FROM nodes WHERE id = $1");
        Add(cmd, Node);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }, cancellationToken);

    /// <summary>The nodes whose lease is current, with when each started.</summary>
    public async Task<IReadOnlyList<(string Node, DateTimeOffset StartedAt)>> LiveNodesAsync(CancellationToken cancellationToken) =>
        await QueryAsync("SELECT id, started_at FROM nodes WHERE lease_until > now() ORDER BY id",
            r => (r.GetString(0), new DateTimeOffset(DateTime.SpecifyKind(r.GetDateTime(1), DateTimeKind.Utc))), cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Takes over tasks whose owner's lease ran out, and queued tasks that only a node that is gone could run (its memory
    /// held their secrets): each is ended under a new epoch (its owner's late writes are then rejected), with the final
    /// record <paramref name="interrupt"/> gives it (from the stored record and request).
    /// </summary>
    public async Task<IReadOnlyList<ExpiredTask>> ReapAsync(Func<TaskRecord, string, TaskRecord> interrupt, int limit, CancellationToken cancellationToken) =>
        await RunAsync(async (db, ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            var expired = new List<(TaskRecord Record, long Epoch, TreeIdentity? Tree, string? Node, string Request)>();
            await using (var select = new NpgsqlCommand("""
                SELECT record_json, epoch, tree_id, cgroup_path, pid, uid, node, request_json FROM tasks
                WHERE (status = 'running' AND lease_until < now())
                   OR (status = 'queued' AND affinity IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM nodes WHERE nodes.id = tasks.affinity AND nodes.lease_until > now()))
                ORDER BY seq FOR UPDATE SKIP LOCKED LIMIT $1
                """, connection, tx))
            {
                select.Parameters.Add(new NpgsqlParameter { Value = limit });
                await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    expired.Add((ApiJson.Record(reader.GetString(0)), reader.GetInt64(1), Tree(reader, 2), reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetString(7)));
            }

            var reaped = new List<ExpiredTask>();
            foreach (var (record, epoch, tree, node, request) in expired)
            {
                var final = interrupt(record, request);
                await using var update = new NpgsqlCommand("""
                    UPDATE tasks SET status = $2, ended_at = $3, record_json = $4, epoch = epoch + 1, session_key = NULL WHERE id = $1 AND epoch = $5
                    """, connection, tx);
                Add(update, final.Id, ApiJson.Name(final.Status), final.EndedAt?.UtcDateTime, ApiJson.Text(final), epoch);
                if (await update.ExecuteNonQueryAsync(ct).ConfigureAwait(false) == 1)
                    reaped.Add(new ExpiredTask(final, epoch + 1, tree, node));
            }

            await tx.CommitAsync(ct).ConfigureAwait(false);
            return (IReadOnlyList<ExpiredTask>)reaped;
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Ends a queued task here and now with the record <paramref name="end"/> gives it (returned with its new epoch). A
    /// running one is left to its owner: flagged for a cancel when <paramref name="flagIfRunning"/> (its owner hears of
    /// it through <c>NOTIFY</c>, or at its next renewal), and <c>null</c> is returned, as for a finished or unknown task.
    /// </summary>
    public async Task<(TaskRecord Record, long Epoch)?> EndQueuedAsync(string id, Func<TaskRecord, TaskRecord> end, bool flagIfRunning, CancellationToken cancellationToken) =>
        await RunAsync(async (db, ct) =>
        {
            await using var connection = await db.OpenConnectionAsync(ct).ConfigureAwait(false);
            await using var tx = await connection.BeginTransactionAsync(ct).ConfigureAwait(false);
            TaskRecord? record = null;
            long epoch = 0;
            string status = "";
            await using (var select = new NpgsqlCommand("SELECT record_json, epoch, status FROM tasks WHERE id = $1 FOR UPDATE", connection, tx))
            {
                select.Parameters.Add(new NpgsqlParameter { Value = id });
                await using var reader = await select.ExecuteReaderAsync(ct).ConfigureAwait(false);
                if (await reader.ReadAsync(ct).ConfigureAwait(false))
                    (record, epoch, status) = (ApiJson.Record(reader.GetString(0)), reader.GetInt64(1), reader.GetString(2));
            }

            (TaskRecord, long)? ended = null;
            if (status == "queued" && record is not null)
            {
                var final = end(record);
                await using var update = new NpgsqlCommand(
                    "UPDATE tasks SET status = $2, ended_at = $3, record_json = $4, epoch = epoch + 1, session_key = NULL WHERE id = $1", connection, tx);
                Add(update, id, ApiJson.Name(final.Status), final.EndedAt?.UtcDateTime, ApiJson.Text(final));
                await update.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
                ended = (final, epoch + 1);
            }
            else if (status == "running" && flagIfRunning)
            {
                await using var flag = new NpgsqlCommand(
                    "WITH flagged AS (UPDATE tasks SET cancel_requested = true WHERE id = $1 RETURNING id) SELECT pg_notify('corral_cancel', id) FROM flagged", connection, tx);
                flag.Parameters.Add(new NpgsqlParameter { Value = id });
                await flag.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }

            await tx.CommitAsync(ct).ConfigureAwait(false);
            return ended;
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>The node that ran the newest task of a session (where its state is kept), or <c>null</c>.</summary>
    public async Task<string?> LastNodeOfSessionAsync(string sessionId, CancellationToken cancellationToken) =>
        await QueryOneAsync("SELECT node FROM tasks WHERE session_id = $1 AND node IS NOT NULL ORDER BY seq DESC LIMIT 1", r => r.GetString(0), cancellationToken, sessionId).ConfigureAwait(false);

    /// <summary>
    /// Tasks that ran on this node and that another node ended while this one was gone (their trees were never seen to
    /// finish here): what is left of them must be killed. A row may lack its tree (the node died before that write
    /// landed): its journal has it then.
    /// </summary>
    public async Task<IReadOnlyList<(TaskRecord Record, TreeIdentity? Tree)>> LeftoversAsync(CancellationToken cancellationToken) =>
        await QueryAsync("""
            SELECT record_json, tree_id, cgroup_path, pid, uid FROM tasks
            WHERE node = $1 AND status NOT IN ('queued', 'running') AND NOT leftovers_cleared
            """, r => (ApiJson.Record(r.GetString(0)), Tree(r, 1)), cancellationToken, Node).ConfigureAwait(false);

    /// <summary>What was left of a task's tree on this node has been killed.</summary>
    public Task ClearedAsync(string id) => RunAsync(async (db, ct) =>
    {
        await using var cmd = db.CreateCommand("UPDATE tasks SET leftovers_cleared = true WHERE id = $1");
        Add(cmd, id);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }, _closing.Token);

    /// <summary>Tells every node (LISTEN) something on <paramref name="channel"/>.</summary>
    public Task NotifyAsync(string channel, string payload) => RunAsync(async (db, ct) =>
    {
        await using var cmd = db.CreateCommand("SELECT pg_notify($1, $2)");
        Add(cmd, channel, payload);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }, _closing.Token);

    public async ValueTask DisposeAsync()
    {
        await _closing.CancelAsync().ConfigureAwait(false);
        _closing.Dispose();
    }

    /// <summary>Runs a database call, retrying transient failures with backoff until it succeeds or <paramref name="cancellationToken"/> fires.</summary>
    internal async Task<T> RunAsync<T>(Func<NpgsqlDataSource, CancellationToken, Task<T>> call, CancellationToken cancellationToken)
    {
        var result = await _retry.ExecuteAsync(async ct => await call(_db, ct).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        if (Interlocked.Exchange(ref _failures, 0) > 0)
            _logger.LogInformation("The task database is reachable again");
        return result;
    }

    /// <summary>A read, retried while the database is out of reach for as long as a write may wait, then refused (a 503 for a request).</summary>
    private async Task<List<T>> QueryAsync<T>(string sql, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken, params object?[] parameters)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(_insertTimeout);
        try
        {
            return await RunAsync(async (db, ct) =>
            {
                await using var cmd = db.CreateCommand(sql);
                Add(cmd, parameters);
                await using var reader = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                var rows = new List<T>();
                while (await reader.ReadAsync(ct).ConfigureAwait(false))
                    rows.Add(map(reader));
                return rows;
            }, deadline.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new StoreException(StoreFailure.Unavailable, $"The task database could not be read within {_insertTimeout.TotalSeconds:0.#} s.", e);
        }
    }

    private async Task<T?> QueryOneAsync<T>(string sql, Func<NpgsqlDataReader, T> map, CancellationToken cancellationToken, params object?[] parameters) =>
        (await QueryAsync(sql, map, cancellationToken, parameters).ConfigureAwait(false)) is [var first, ..] ? first : default;

    private static TreeIdentity? Tree(NpgsqlDataReader r, int at) => r.IsDBNull(at) ? null
        : new TreeIdentity(r.GetString(at), r.IsDBNull(at + 1) ? null : r.GetString(at + 1), r.IsDBNull(at + 2) ? 0 : r.GetInt32(at + 2), r.IsDBNull(at + 3) ? null : r.GetInt32(at + 3));

    private static NpgsqlBatchCommand Command(string sql, params object?[] parameters)
    {
        var cmd = new NpgsqlBatchCommand(sql);
        foreach (var p in parameters)
            cmd.Parameters.Add(Parameter(p));
        return cmd;
    }

    private static void Add(NpgsqlCommand cmd, params object?[] parameters)
    {
        foreach (var p in parameters)
            cmd.Parameters.Add(Parameter(p));
    }

    private static NpgsqlParameter Parameter(object? value) => value switch
    {
        null => new NpgsqlParameter { Value = DBNull.Value },
        TimeSpan span => new NpgsqlParameter { Value = span, NpgsqlDbType = NpgsqlDbType.Interval },
        DateTime at => new NpgsqlParameter { Value = DateTime.SpecifyKind(at, DateTimeKind.Utc), NpgsqlDbType = NpgsqlDbType.TimestampTz },
        _ => new NpgsqlParameter { Value = value },
    };

    /// <summary>A failure worth retrying: the database restarting, a connection cut, an overloaded server.</summary>
    private static bool IsTransient(NpgsqlException e) =>
        e.IsTransient || e is PostgresException { SqlState: "57P01" or "57P02" or "57P03" or "53300" or "40001" or "40P01" } || e.InnerException is IOException or System.Net.Sockets.SocketException;

}
