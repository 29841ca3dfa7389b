using Npgsql;

namespace Corral.Server.Internal.Storage.Postgres;

/// <summary>The schema in PostgreSQL, versioned in <c>corral_meta</c>; nodes starting at once migrate one at a time (an advisory lock).</summary>
internal static class PostgresSchema
{
    public const int Version = 3;

    private const long MigrationLock = 0x436F7272616C; // "Corral"

    private static readonly string[] Steps =
    [
        """
        CREATE TABLE tasks (
            seq bigserial PRIMARY KEY,
            id text NOT NULL UNIQUE,
            status text NOT NULL,
            agent text NOT NULL,
            session_id text,
            session_key text,
            idempotency_key text UNIQUE,
            request_hash text,
            created_at timestamptz NOT NULL,
            ended_at timestamptz,
            request_json text NOT NULL,
            record_json text NOT NULL,
            node text,
            affinity text,
            memory_bytes bigint,
            epoch bigint NOT NULL DEFAULT 0,
            lease_until timestamptz,
            cancel_requested boolean NOT NULL DEFAULT false,
            tree_id text,
            cgroup_path text,
            pid integer,
            uid integer,
            leftovers_cleared boolean NOT NULL DEFAULT false);
        CREATE UNIQUE INDEX tasks_session_active ON tasks (session_key) WHERE session_key IS NOT NULL AND status IN ('queued', 'running');
        CREATE INDEX tasks_queue ON tasks (seq) WHERE status = 'queued';
        CREATE INDEX tasks_owned ON tasks (node) WHERE status = 'running';
        CREATE INDEX tasks_ended ON tasks (ended_at) WHERE ended_at IS NOT NULL;
        CREATE INDEX tasks_status ON tasks (status);
        CREATE TABLE journal (task_id text NOT NULL, seq integer NOT NULL, data bytea NOT NULL, PRIMARY KEY (task_id, seq));
        CREATE TABLE nodes (id text PRIMARY KEY, started_at timestamptz NOT NULL, lease_until timestamptz NOT NULL);
        """,
        // 2: webhook deliveries.
        """
        CREATE TABLE webhook_deliveries (
            id text PRIMARY KEY,
            task_id text NOT NULL,
            url text NOT NULL,
            event text NOT NULL,
            state text NOT NULL,
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            pending_at timestamptz,
            next_attempt_at timestamptz,
            lease_until timestamptz,
            last_status integer,
            last_error text,
            delivered_at timestamptz,
            payload text);
        CREATE INDEX webhook_deliveries_task ON webhook_deliveries (task_id);
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
        """,
        // 3: what each journal chunk holds of the output, so that a node ending another's task counts it without reading it.
        """
        ALTER TABLE journal ADD COLUMN stdout_bytes bigint NOT NULL DEFAULT 0, ADD COLUMN stderr_bytes bigint NOT NULL DEFAULT 0,
            ADD COLUMN dropped_stdout bigint NOT NULL DEFAULT 0, ADD COLUMN dropped_stderr bigint NOT NULL DEFAULT 0;
        """,
    ];

    public static async Task MigrateAsync(NpgsqlDataSource db, CancellationToken cancellationToken)
    {
        await using var connection = await db.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await Execute(connection, tx, $"SELECT pg_advisory_xact_lock({MigrationLock})", cancellationToken).ConfigureAwait(false);
        await Execute(connection, tx, "CREATE TABLE IF NOT EXISTS corral_meta (key text PRIMARY KEY, value text NOT NULL)", cancellationToken).ConfigureAwait(false);
        await using var read = new NpgsqlCommand("SELECT value FROM corral_meta WHERE key = 'schema'", connection, tx);
        int current = await read.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is string v ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : 0;
        if (current > Version)
            throw new InvalidOperationException($"The database has schema version {current}, newer than this server's {Version}: run a newer Corral.");
        for (int step = current; step < Version; step++)
            await Execute(connection, tx, Steps[step], cancellationToken).ConfigureAwait(false);
        await Execute(connection, tx, $"INSERT INTO corral_meta (key, value) VALUES ('schema', '{Version}') ON CONFLICT (key) DO UPDATE SET value = excluded.value", cancellationToken).ConfigureAwait(false);
        await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
    }

    private static async Task Execute(NpgsqlConnection connection, NpgsqlTransaction tx, string sql, CancellationToken cancellationToken)
    {
        await using var cmd = new NpgsqlCommand(sql, connection, tx);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }
}
