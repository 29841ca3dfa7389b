using System.Text.Json;
using Corral.Server.Api;
using Microsoft.Data.Sqlite;

namespace Corral.Server.Internal.Storage;

/// <summary>
/// Task records in SQLite. One connection behind a lock: every statement is tiny, and serialising them avoids
/// SQLITE_BUSY altogether. The full record is kept as JSON; the columns exist to query by.
/// </summary>
internal sealed class TaskStore : IDisposable
{
    private readonly SqliteConnection _db;
    private readonly Lock _gate = new();

    public TaskStore(string path)
    {
        _db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        _db.Open();
        Execute("""
            PRAGMA journal_mode=WAL;
            PRAGMA synchronous=FULL;
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
            """);
    }

    public void Insert(TaskRecord record, string requestJson, string? requestHash)
    {
        lock (_gate)
        {
            using var cmd = Command("""
                INSERT INTO tasks (id, status, agent, session_id, idempotency_key, request_hash, created_at, request_json, record_json)
                VALUES ($id, $status, $agent, $session, $key, $hash, $created, $request, $record)
                """);
            cmd.Parameters.AddWithValue("$id", record.Id);
            cmd.Parameters.AddWithValue("$status", Status(record.Status));
            cmd.Parameters.AddWithValue("$agent", record.Agent);
            cmd.Parameters.AddWithValue("$session", (object?)record.SessionId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$key", (object?)record.IdempotencyKey ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$hash", (object?)requestHash ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$created", record.CreatedAt.ToString("O"));
            cmd.Parameters.AddWithValue("$request", requestJson);
            cmd.Parameters.AddWithValue("$record", Serialize(record));
            cmd.ExecuteNonQuery();
        }
    }

    public void Update(TaskRecord record)
    {
        lock (_gate)
        {
            using var cmd = Command("UPDATE tasks SET status = $status, session_id = $session, record_json = $record WHERE id = $id");
            cmd.Parameters.AddWithValue("$id", record.Id);
            cmd.Parameters.AddWithValue("$status", Status(record.Status));
            cmd.Parameters.AddWithValue("$session", (object?)record.SessionId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$record", Serialize(record));
            cmd.ExecuteNonQuery();
        }
    }

    /// <summary>Remembers the process tree, so that start-up after a crash can kill what is left of it.</summary>
    public void SetProcess(string id, string treeId, string? cgroupPath, int pid)
    {
        lock (_gate)
        {
            using var cmd = Command("UPDATE tasks SET tree_id = $tree, cgroup_path = $cgroup, pid = $pid WHERE id = $id");
            cmd.Parameters.AddWithValue("$id", id);
            cmd.Parameters.AddWithValue("$tree", treeId);
            cmd.Parameters.AddWithValue("$cgroup", (object?)cgroupPath ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$pid", pid);
            cmd.ExecuteNonQuery();
        }
    }

    public TaskRecord? Get(string id)
    {
        lock (_gate)
        {
            using var cmd = Command("SELECT record_json FROM tasks WHERE id = $id");
            cmd.Parameters.AddWithValue("$id", id);
            return cmd.ExecuteScalar() is string json ? Deserialize(json) : null;
        }
    }

    public (TaskRecord Record, string? Hash)? GetByIdempotencyKey(string key)
    {
        lock (_gate)
        {
            using var cmd = Command("SELECT record_json, request_hash FROM tasks WHERE idempotency_key = $key");
            cmd.Parameters.AddWithValue("$key", key);
            using var reader = cmd.ExecuteReader();
            if (!reader.Read())
                return null;
            return (Deserialize(reader.GetString(0)), reader.IsDBNull(1) ? null : reader.GetString(1));
        }
    }

    /// <summary>Newest first; <paramref name="beforeSeq"/> continues a previous page.</summary>
    public (List<TaskRecord> Items, long? LastSeq) List(TaskState? status, string? sessionId, int limit, long? beforeSeq)
    {
        lock (_gate)
        {
            using var cmd = Command("""
                SELECT seq, record_json FROM tasks
                WHERE ($status IS NULL OR status = $status) AND ($session IS NULL OR session_id = $session) AND ($before IS NULL OR seq < $before)
                ORDER BY seq DESC LIMIT $limit
                """);
            cmd.Parameters.AddWithValue("$status", status is { } s ? Status(s) : DBNull.Value);
            cmd.Parameters.AddWithValue("$session", (object?)sessionId ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$before", (object?)beforeSeq ?? DBNull.Value);
            cmd.Parameters.AddWithValue("$limit", limit);
            using var reader = cmd.ExecuteReader();
            var items = new List<TaskRecord>();
            long? last = null;
            while (reader.Read())
            {
                last = reader.GetInt64(0);
                items.Add(Deserialize(reader.GetString(1)));
            }

            return (items, last);
        }
    }

    /// <summary>Tasks a previous server process left queued or running, with their process trees.</summary>
    public List<(TaskRecord Record, string? TreeId, string? CgroupPath)> ListUnfinished()
    {
        lock (_gate)
        {
            using var cmd = Command("SELECT record_json, tree_id, cgroup_path FROM tasks WHERE status IN ('queued', 'running') ORDER BY seq");
            using var reader = cmd.ExecuteReader();
            var items = new List<(TaskRecord, string?, string?)>();
            while (reader.Read())
                items.Add((Deserialize(reader.GetString(0)), reader.IsDBNull(1) ? null : reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2)));
            return items;
        }
    }

    public void Dispose()
    {
        lock (_gate)
            _db.Dispose();
    }

    private static string Status(TaskState state) => JsonNamingPolicy.CamelCase.ConvertName(state.ToString());

    private static string Serialize(TaskRecord record) => JsonSerializer.Serialize(record, ApiJson.Options);

    private static TaskRecord Deserialize(string json) => JsonSerializer.Deserialize<TaskRecord>(json, ApiJson.Options)!;

    private SqliteCommand Command(string sql)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }

    private void Execute(string sql)
    {
        using var cmd = Command(sql);
        cmd.ExecuteNonQuery();
    }
}
