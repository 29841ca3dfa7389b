using Corral.Server.Api;
using Corral.Server.Internal.Webhooks;
using Npgsql;

namespace Corral.Server.Internal.Storage.Postgres;

/// <summary>
/// Webhook deliveries in the fleet's <c>webhook_deliveries</c> table (schema v2). Every node sends: a claim takes due
/// rows with <c>FOR UPDATE SKIP LOCKED</c> and holds them for a lease, so two nodes never send one delivery at the same
/// time, and a node that dies mid-attempt leaves it due again when the lease ends.
/// </summary>
internal sealed class PostgresWebhookStore(NpgsqlDataSource db) : IWebhookStore
{
    public async Task AddAsync(IReadOnlyList<NewDelivery> deliveries, CancellationToken cancellationToken)
    {
        await using var batch = db.CreateBatch();
        foreach (var d in deliveries)
        {
            var cmd = new NpgsqlBatchCommand("""
                INSERT INTO webhook_deliveries (id, task_id, url, event, state, created_at, pending_at, next_attempt_at, payload)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8) ON CONFLICT (id) DO NOTHING
                """);
            cmd.Parameters.Add(new() { Value = d.Id });
            cmd.Parameters.Add(new() { Value = d.TaskId });
            cmd.Parameters.Add(new() { Value = d.Url });
            cmd.Parameters.Add(new() { Value = d.Event });
            cmd.Parameters.Add(new() { Value = d.Payload is null ? "waiting" : "pending" });
            cmd.Parameters.Add(new() { Value = d.CreatedAt.UtcDateTime });
            cmd.Parameters.Add(new() { Value = d.Payload is null ? DBNull.Value : d.CreatedAt.UtcDateTime, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz });
            cmd.Parameters.Add(new() { Value = (object?)d.Payload ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
            batch.BatchCommands.Add(cmd);
        }

        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<int> MarkPendingAsync(string taskId, string payload, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            UPDATE webhook_deliveries SET state = 'pending', payload = $2, pending_at = $3, next_attempt_at = $3
            WHERE task_id = $1 AND state = 'waiting'
            """);
        Add(cmd, taskId, payload, now.UtcDateTime);
        return await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task AbandonAsync(string taskId, string reason, DateTimeOffset now, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("UPDATE webhook_deliveries SET state = 'failed', last_error = $2 WHERE task_id = $1 AND state = 'waiting'");
        Add(cmd, taskId, reason);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<IReadOnlyList<string>> WaitingTasksAsync(int limit, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("SELECT DISTINCT task_id FROM webhook_deliveries WHERE state = 'waiting' LIMIT $1");
        Add(cmd, limit);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var ids = new List<string>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            ids.Add(reader.GetString(0));
        return ids;
    }

    public async Task<IReadOnlyList<DueDelivery>> ClaimDueAsync(DateTimeOffset now, TimeSpan lease, int limit, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            UPDATE webhook_deliveries SET lease_until = $2
            WHERE id IN (SELECT id FROM webhook_deliveries
                         WHERE state = 'pending' AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)
                         ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED)
            RETURNING id, task_id, url, payload, attempts, pending_at
            """);
        Add(cmd, now.UtcDateTime, (now + lease).UtcDateTime, limit);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var due = new List<DueDelivery>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            due.Add(new DueDelivery(reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetInt32(4),
                reader.GetFieldValue<DateTimeOffset>(5)));
        }

        return due;
    }

    public async Task RecordAttemptAsync(AttemptOutcome outcome, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            UPDATE webhook_deliveries SET state = $2, attempts = attempts + 1, lease_until = NULL, last_status = $3, last_error = $4,
                next_attempt_at = $5, delivered_at = $6
            WHERE id = $1
            """);
        cmd.Parameters.Add(new() { Value = outcome.Id });
        cmd.Parameters.Add(new() { Value = WebhookStates.Name(outcome.State) });
        cmd.Parameters.Add(new() { Value = (object?)outcome.Status ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = (object?)outcome.Error ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = outcome.NextAttemptAt is { } next ? next.UtcDateTime : DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new()
        {
            Value = outcome.State == WebhookDeliveryState.Delivered ? outcome.At.UtcDateTime : DBNull.Value,
            NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.TimestampTz,
        });
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("SELECT min(greatest(next_attempt_at, lease_until)) FROM webhook_deliveries WHERE state = 'pending'");
        return await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is DateTime at
            ? new DateTimeOffset(DateTime.SpecifyKind(at, DateTimeKind.Utc))
            : null;
    }

    public async Task<IReadOnlyList<WebhookDelivery>> ListAsync(string taskId, CancellationToken cancellationToken)
    {
        await using var cmd = db.CreateCommand("""
            SELECT id, url, event, state, attempts, last_status, last_error, created_at, next_attempt_at, delivered_at
            FROM webhook_deliveries WHERE task_id = $1 ORDER BY created_at, event DESC, id
            """);
        Add(cmd, taskId);
        await using var reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var items = new List<WebhookDelivery>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            var state = WebhookStates.Parse(reader.GetString(3));
            items.Add(new WebhookDelivery(reader.GetString(0), reader.GetString(1), reader.GetString(2), state, reader.GetInt32(4),
                reader.IsDBNull(5) ? null : reader.GetInt32(5), reader.IsDBNull(6) ? null : reader.GetString(6), reader.GetFieldValue<DateTimeOffset>(7),
                state == WebhookDeliveryState.Pending && !reader.IsDBNull(8) ? reader.GetFieldValue<DateTimeOffset>(8) : null,
                reader.IsDBNull(9) ? null : reader.GetFieldValue<DateTimeOffset>(9)));
        }

        return items;
    }

    private static void Add(NpgsqlCommand cmd, params object[] values)
    {
        foreach (object v in values)
            cmd.Parameters.Add(new NpgsqlParameter { Value = v });
    }
}
