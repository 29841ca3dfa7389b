using Corral.Server.Api;
using Corral.Server.Internal.Webhooks;
using Microsoft.Data.Sqlite;

namespace Corral.Server.Internal.Storage.Sqlite;

/// <summary>
/// Webhook deliveries in the task database's <c>webhook_deliveries</c> table (migrated by <see cref="SqliteSchema"/>,
/// which the task store runs before this store exists). One process owns the database and its dispatcher claims again
/// only once the attempts of its last claim are recorded, so a claim needs no lease here: a claim left by a killed
/// process is no claim (and the start writes nothing, so it does not wait for a database another process locks).
/// Times are Unix milliseconds.
/// </summary>
internal sealed class SqliteWebhookStore : IWebhookStore
{
    private readonly string _connectionString;

    /// <param name="path">The task database.</param>
    /// <param name="tasks">The task store, which creates and migrates the database: taken so that it exists first.</param>
    public SqliteWebhookStore(string path, ITaskStore tasks)
    {
        _ = tasks;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Mode = SqliteOpenMode.ReadWrite, DefaultTimeout = 10 }.ToString();
    }

    public Task AddAsync(IReadOnlyList<NewDelivery> deliveries, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var tx = db.BeginTransaction();
        foreach (var d in deliveries)
        {
            using var cmd = Command(db, """
                INSERT OR IGNORE INTO webhook_deliveries (id, task_id, url, event, state, created_at, pending_at, next_attempt_at, payload)
                VALUES ($id, $task, $url, $event, $state, $created, $pending, $pending, $payload)
                """, tx);
            cmd.Parameters.AddWithValue("$id", d.Id);
            cmd.Parameters.AddWithValue("$task", d.TaskId);
            cmd.Parameters.AddWithValue("$url", d.Url);
            cmd.Parameters.AddWithValue("$event", d.Event);
            cmd.Parameters.AddWithValue("$state", d.Payload is null ? "waiting" : "pending");
            cmd.Parameters.AddWithValue("$created", Ms(d.CreatedAt));
            cmd.Parameters.AddWithValue("$pending", d.Payload is null ? DBNull.Value : Ms(d.CreatedAt));
            cmd.Parameters.AddWithValue("$payload", (object?)d.Payload ?? DBNull.Value);
            cmd.ExecuteNonQuery();
        }

        tx.Commit();
        return Task.CompletedTask;
    }

    public Task<int> MarkPendingAsync(string taskId, string payload, DateTimeOffset now, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, """
            UPDATE webhook_deliveries SET state = 'pending', payload = $payload, pending_at = $now, next_attempt_at = $now
            WHERE task_id = $task AND state = 'waiting'
            """);
        cmd.Parameters.AddWithValue("$task", taskId);
        cmd.Parameters.AddWithValue("$payload", payload);
        cmd.Parameters.AddWithValue("$now", Ms(now));
        return Task.FromResult(cmd.ExecuteNonQuery());
    }

    public Task AbandonAsync(string taskId, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, "UPDATE webhook_deliveries SET state = 'failed', last_error = $reason WHERE task_id = $task AND state = 'waiting'");
        cmd.Parameters.AddWithValue("$task", taskId);
        cmd.Parameters.AddWithValue("$reason", reason);
        cmd.ExecuteNonQuery();
        return Task.CompletedTask;
    }

    public Task<IReadOnlyList<string>> WaitingTasksAsync(int limit, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, "SELECT DISTINCT task_id FROM webhook_deliveries WHERE state = 'waiting' LIMIT $limit");
        cmd.Parameters.AddWithValue("$limit", limit);
        using var reader = cmd.ExecuteReader();
        var ids = new List<string>();
        while (reader.Read())
            ids.Add(reader.GetString(0));
        return Task.FromResult<IReadOnlyList<string>>(ids);
    }

    public Task<IReadOnlyList<DueDelivery>> ClaimDueAsync(DateTimeOffset now, TimeSpan lease, int limit, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, """
            SELECT id, task_id, url, payload, attempts, pending_at FROM webhook_deliveries
            WHERE state = 'pending' AND next_attempt_at <= $now ORDER BY next_attempt_at LIMIT $limit
            """);
        cmd.Parameters.AddWithValue("$now", Ms(now));
        cmd.Parameters.AddWithValue("$limit", limit);
        var due = new List<DueDelivery>();
        using (var reader = cmd.ExecuteReader())
        {
            while (reader.Read())
                due.Add(new DueDelivery(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4), At(reader.GetInt64(5))));
        }

        return Task.FromResult<IReadOnlyList<DueDelivery>>(due);
    }

    public Task RecordAttemptAsync(AttemptOutcome outcome, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, """
            UPDATE webhook_deliveries SET state = $state, attempts = attempts + 1, lease_until = NULL, last_status = $status, last_error = $error,
                next_attempt_at = $next, delivered_at = $delivered
            WHERE id = $id
            """);
        cmd.Parameters.AddWithValue("$id", outcome.Id);
        cmd.Parameters.AddWithValue("$state", WebhookStates.Name(outcome.State));
        cmd.Parameters.AddWithValue("$status", (object?)outcome.Status ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$error", (object?)outcome.Error ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$next", outcome.NextAttemptAt is { } next ? Ms(next) : DBNull.Value);
        cmd.Parameters.AddWithValue("$delivered", outcome.State == WebhookDeliveryState.Delivered ? Ms(outcome.At) : DBNull.Value);
        cmd.ExecuteNonQuery();
        return Task.CompletedTask;
    }

    public Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, "SELECT min(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'");
        return Task.FromResult(cmd.ExecuteScalar() is long ms ? At(ms) : (DateTimeOffset?)null);
    }

    public Task<IReadOnlyList<WebhookDelivery>> ListAsync(string taskId, CancellationToken cancellationToken)
    {
        using var db = Open();
        using var cmd = Command(db, """
            SELECT id, url, event, state, attempts, last_status, last_error, created_at, next_attempt_at, delivered_at
            FROM webhook_deliveries WHERE task_id = $task ORDER BY created_at, event DESC, id
            """);
        cmd.Parameters.AddWithValue("$task", taskId);
        using var reader = cmd.ExecuteReader();
        var items = new List<WebhookDelivery>();
        while (reader.Read())
        {
            var state = WebhookStates.Parse(reader.GetString(3));
            items.Add(new WebhookDelivery(reader.GetString(0), reader.GetString(1), reader.GetString(2), state, reader.GetInt32(4),
                reader.IsDBNull(5) ? null : reader.GetInt32(5), reader.IsDBNull(6) ? null : reader.GetString(6), At(reader.GetInt64(7)),
                state == WebhookDeliveryState.Pending && !reader.IsDBNull(8) ? At(reader.GetInt64(8)) : null,
                reader.IsDBNull(9) ? null : At(reader.GetInt64(9))));
        }

        return Task.FromResult<IReadOnlyList<WebhookDelivery>>(items);
    }

    private SqliteConnection Open()
    {
        var db = new SqliteConnection(_connectionString);
        db.Open();
        return db;
    }

    private static SqliteCommand Command(SqliteConnection db, string sql, SqliteTransaction? tx = null) => SqliteTaskStore.Command(db, sql, tx);

    private static long Ms(DateTimeOffset at) => at.ToUnixTimeMilliseconds();

    private static DateTimeOffset At(long ms) => DateTimeOffset.FromUnixTimeMilliseconds(ms);
}
