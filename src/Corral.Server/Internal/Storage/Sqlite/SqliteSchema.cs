using Microsoft.Data.Sqlite;

namespace Corral.Server.Internal.Storage.Sqlite;

/// <summary>The schema, versioned with <c>PRAGMA user_version</c>; each step migrates from the one before.</summary>
internal static class SqliteSchema
{
    public const int Version = 3;

    private static readonly string[] Steps =
    [
        // 1: the first schema (no user_version was set then, so a database of that time reads as 0).
        """
        CREATE TABLE IF NOT EXISTS tasks (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,
            agent TEXT NOT NULL,
            session_id TEXT,
            idempotency_key TEXT UNIQUE,
            request_hash TEXT,
            created_at TEXT NOT NULL,
            tree_id TEXT,
            cgroup_path TEXT,
            pid INTEGER,
            request_json TEXT NOT NULL,
            record_json TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
        CREATE INDEX IF NOT EXISTS tasks_session ON tasks(session_id);
        """,
        // 2: when a task ended, for retention.
        """
        ALTER TABLE tasks ADD COLUMN ended_at TEXT;
        UPDATE tasks SET ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', json_extract(record_json, '$.endedAt')) WHERE status NOT IN ('queued', 'running');
        CREATE INDEX IF NOT EXISTS tasks_ended ON tasks(ended_at) WHERE ended_at IS NOT NULL;
        """,
        // 3: webhook deliveries (times in Unix milliseconds).
        """
        CREATE TABLE IF NOT EXISTS webhook_deliveries (
            id TEXT PRIMARY KEY,
            task_id TEXT NOT NULL,
            url TEXT NOT NULL,
            event TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at INTEGER NOT NULL,
            pending_at INTEGER,
            next_attempt_at INTEGER,
            lease_until INTEGER,
            last_status INTEGER,
            last_error TEXT,
            delivered_at INTEGER,
            payload TEXT);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_task ON webhook_deliveries(task_id);
        CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';
        """,
    ];

    public static void Migrate(SqliteConnection db)
    {
        using (var wal = db.CreateCommand())
        {
            wal.CommandText = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;";
            wal.ExecuteNonQuery();
        }

        int current = Scalar(db, "PRAGMA user_version");
        if (current == 0 && Scalar(db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tasks'") == 1)
            current = 1; // made by the first version, which did not number its schema
        if (current > Version)
            throw new InvalidOperationException($"The database has schema version {current}, newer than this server's {Version}: run a newer Corral.");
        for (int step = current; step < Version; step++)
        {
            using var tx = db.BeginTransaction();
            using var cmd = db.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = Steps[step] + $"\nPRAGMA user_version = {step + 1};";
            cmd.ExecuteNonQuery();
            tx.Commit();
        }
    }

    private static int Scalar(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
