using System.Collections.Concurrent;
using Corral.Server.Internal.Storage.Journal;
using Npgsql;

namespace Corral.Server.Internal.Storage.Postgres;

/// <summary>
/// Journals as rows of the shared database, one per commit (<c>journal(task_id, seq, data)</c>), so that any node can
/// replay and follow any task. The bytes are the same as in a journal file (<see cref="JournalFormat"/>); a journal's
/// position is the sum of its chunks' lengths in <c>seq</c> order. Every append is fenced by the epoch its writer holds
/// the task under, and tells the fleet (<c>NOTIFY corral_journal</c>) so that followers on other nodes wake within
/// milliseconds. Chunks are written with <c>synchronous_commit</c> off (the journal file's per-interval durability);
/// final records are written synchronously by the task store. The task's local directory (its workdir, when Corral
/// made one) stays on the node that runs it.
/// </summary>
internal sealed class PostgresJournalStore : IJournalStore
{
    private readonly NpgsqlDataSource _db;
    private readonly NpgsqlDataSource _chunks;
    private readonly PostgresTaskStore _tasks;
    private readonly PostgresNotifications _notifications;
    private readonly ServerPaths _paths;
    private readonly TimeSpan _outage;
    private readonly ConcurrentDictionary<string, JournalWriter> _open = new(StringComparer.Ordinal);

    /// <summary>How long after a task's row ended its journal may still take the final events (then a follower is given an end made from the row).</summary>
    private static readonly TimeSpan EndGrace = TimeSpan.FromSeconds(30);

    /// <param name="db">The database, for reads.</param>
    /// <param name="chunks">The same database with <c>synchronous_commit</c> off, for appends.</param>
    /// <param name="tasks">Knows the epoch this node holds each of its tasks under.</param>
    /// <param name="notifications">Wakes followers of tasks written by other nodes.</param>
    /// <param name="paths">Where tasks' local directories are.</param>
    /// <param name="outage">How long an append waits out an unreachable database before it fails.</param>
    public PostgresJournalStore(NpgsqlDataSource db, NpgsqlDataSource chunks, PostgresTaskStore tasks, PostgresNotifications notifications, ServerPaths paths, TimeSpan outage)
    {
        _db = db;
        _chunks = chunks;
        _tasks = tasks;
        _notifications = notifications;
        _paths = paths;
        _outage = outage;
        // The node's own task directories: 0711 when tasks run as uids of their own (they pass through to their HOME and workdir).
        Files.CreatePrivateDirectory(paths.Tasks);
        Files.Restrict(paths.Tasks, paths.DirectoryMode);
    }

    public JournalWriter Create(string id) => Create(id, () => _tasks.EpochOf(id) ?? 0);

    public JournalWriter Open(string id) => Open(id, () => _tasks.EpochOf(id) ?? 0);

    /// <summary>Opens <paramref name="id"/>'s journal to append under <paramref name="epoch"/>: a node that has just taken a task over from another.</summary>
    public JournalWriter Open(string id, long epoch) => Open(id, () => epoch);

    public JournalReader Read(string id) => new(new Source(_db, id));

    /// <summary>
    /// Reads the journal's last commit alone, as a journal of its own: a task's final events are committed together,
    /// so this is where its end is when it has one. A task that printed a gigabyte is not read whole to learn that.
    /// </summary>
    public JournalReader ReadLastCommit(string id)
    {
        using var cmd = _db.CreateCommand("SELECT data FROM journal WHERE task_id = $1 AND seq > 1 ORDER BY seq DESC LIMIT 1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        return new JournalReader(cmd.ExecuteScalar() is byte[] last ? new Bytes([.. JournalFormat.Header, .. last]) : null);
    }

    /// <summary>
    /// What a journal says of a task that never wrote its end, without reading its output: its start and tree notes
    /// (read up to its first output), its output's size and its last drop note (kept beside each chunk).
    /// </summary>
    public JournalFacts UnfinishedFactsOf(string id)
    {
        var head = JournalFacts.Of(Read(id), headOnly: true);
        using var cmd = _db.CreateCommand("""
            SELECT coalesce(sum(stdout_bytes), 0)::bigint, coalesce(sum(stderr_bytes), 0)::bigint,
                   coalesce(max(dropped_stdout), 0)::bigint, coalesce(max(dropped_stderr), 0)::bigint
            FROM journal WHERE task_id = $1
            """);
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        using var reader = cmd.ExecuteReader();
        reader.Read();
        return head with { StdoutBytes = reader.GetInt64(0), StderrBytes = reader.GetInt64(1), Dropped = new DropNote(reader.GetInt64(2), reader.GetInt64(3)) };
    }

    public JournalWatch Watch(string id, JournalReader reader)
    {
        if (_open.TryGetValue(id, out var writer) && !writer.IsClosed)
            return new JournalWatch(writer.Committed, writer.Changed, true);

        // Another node writes it (or nobody any more). The signal is taken before the length is read, so that a
        // commit in between is not missed; a lost notification costs at most the poll. A reader that has caught up
        // asks whether the task is still live, then reads the length again: its owner commits the final events before
        // the row ends, so a row seen ended means the second length holds them.
        var changed = _notifications.JournalChanged(id);
        long length = reader.FileLength;
        if (reader.Position < length || IsLive(id))
            return new JournalWatch(length, changed, true);
        long last = reader.FileLength;
        return last > length ? new JournalWatch(last, changed, true) : new JournalWatch(last, Task.CompletedTask, false);
    }

    public void Delete(string id)
    {
        using (var cmd = _db.CreateCommand("DELETE FROM journal WHERE task_id = $1"))
        {
            cmd.Parameters.Add(new NpgsqlParameter { Value = id });
            cmd.ExecuteNonQuery();
        }

        string dir = _paths.TaskDirectory(id);
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>Nothing to do: a chunk is in the database's hands once written, and on disk within its WAL writer's delay.</summary>
    public void Sync()
    {
    }

    public void Dispose()
    {
    }

    private JournalWriter Create(string id, Func<long> epoch)
    {
        // Only the node that runs the task needs its directory (it makes it when it opens the journal to run it).
        string dir = _paths.TaskDirectory(id);
        var sink = new Sink(_chunks, id, epoch, 1, [], _outage);
        sink.Append(JournalFormat.Header, 0);
        return Register(id, new JournalWriter(dir, sink, JournalFormat.Header.Length, 0, null));
    }

    /// <summary>
    /// Opens a journal to append, riding out a database outage up to the lease: a node that has just claimed a task
    /// (the claim committed) must not fail it because the database restarted before the journal could be read.
    /// </summary>
    private JournalWriter Open(string id, Func<long> epoch) =>
        RideOutAsync(_outage, _ => ValueTask.FromResult(OpenOnce(id, epoch))).AsTask().GetAwaiter().GetResult(); // once per claim

    /// <summary>
    /// Runs <paramref name="attempt"/> until it returns, trying again while the database is restarting or out of reach,
    /// for up to <paramref name="outage"/> (backoff from 50 ms to 1 s, no thread held meanwhile); the attempt is told
    /// whether one before it failed. Past the outage the last error is thrown.
    /// </summary>
    private static async ValueTask<T> RideOutAsync<T>(TimeSpan outage, Func<bool, ValueTask<T>> attempt)
    {
        var deadline = DateTime.UtcNow + outage;
        var delay = TimeSpan.FromMilliseconds(50);
        bool retried = false;
        while (true)
        {
            try
            {
                return await attempt(retried).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException && DateTime.UtcNow < deadline)
            {
                retried = true;
                await Task.Delay(delay).ConfigureAwait(false);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 1000));
            }
        }
    }

    private JournalWriter OpenOnce(string id, Func<long> epoch)
    {
        using var source = new Source(_db, id);
        var chunks = source.Chunks();
        if (chunks.Count == 0)
            return Create(id, epoch);

        var (end, events) = JournalWriter.Scan(new JournalReader(source));
        var sink = new Sink(_chunks, id, epoch, chunks[^1].Seq + 1, [.. chunks.Select(c => c.Length)], _outage);
        sink.Truncate(end);
        return Register(id, new JournalWriter(LocalDirectory(id), sink, end, events, null));
    }

    /// <summary>The task's directory on this node (created: a workdir Corral makes lives in it).</summary>
    private string LocalDirectory(string id)
    {
        string dir = _paths.TaskDirectory(id);
        if (!Directory.Exists(dir))
            Directory.CreateDirectory(dir, _paths.DirectoryMode);

        return dir;
    }

    /// <summary>
    /// Whether more may still be written to a journal: its task is queued or running (a deleted task is not), or it
    /// ended within the last <see cref="EndGrace"/> and its journal does not hold its end yet. A node that ends another
    /// node's task (its lease ran out) appends the final events after the row has its end.
    /// </summary>
    private bool IsLive(string id)
    {
        using var cmd = _db.CreateCommand("SELECT status IN ('queued', 'running'), ended_at > now() - $2 FROM tasks WHERE id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = id });
        cmd.Parameters.Add(new NpgsqlParameter { Value = EndGrace });
        using (var reader = cmd.ExecuteReader())
        {
            if (!reader.Read())
                return false;
            if (reader.GetBoolean(0))
                return true;
            if (reader.IsDBNull(1) || !reader.GetBoolean(1))
                return false;
        }

        return JournalFacts.Of(ReadLastCommit(id)).Final is null;
    }

    private JournalWriter Register(string id, JournalWriter writer)
    {
        _open[id] = writer;
        writer.Closed += () => _open.TryRemove(new KeyValuePair<string, JournalWriter>(id, writer));
        return writer;
    }

    /// <summary>One journal's chunks, to append to, fenced by an epoch.</summary>
    private sealed class Sink(NpgsqlDataSource db, string id, Func<long> epoch, int nextSeq, List<int> lengths, TimeSpan outage) : IAsyncJournalSink
    {
        private int _next = nextSeq;

        public void Append(ReadOnlySpan<byte> bytes, long position) => AppendAsync(bytes.ToArray(), position, default).AsTask().GetAwaiter().GetResult();

        public async ValueTask AppendAsync(byte[] data, long position, ChunkCounts counts)
        {
            try
            {
                // The database restarting or out of reach: the output waits (the child waits on its pipe), up to the lease.
                await RideOutAsync(outage, retried => WriteAsync(data, counts, retried)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                throw new IOException($"The task database could not take task {id}'s journal for {outage.TotalSeconds:0} s: {e.Message}", e);
            }

            _next++;
            lengths.Add(data.Length);
        }

        /// <summary>One attempt to write the next chunk.</summary>
        private async ValueTask<bool> WriteAsync(byte[] data, ChunkCounts counts, bool retried)
        {
            try
            {
                // Written only while no other node holds the task under a newer epoch (no row yet: it is being created,
                // which only a writer that has never held it under an epoch does; for any other the row was deleted).
                // The row is share-locked for it: a node that reaps the task locks the row FOR UPDATE before it reads
                // the journal, so a chunk either commits before that read (the reaper skips the row, locked, and finds
                // the chunk the next time) or waits for the reap and meets its new epoch. Never after the read.
                await using var cmd = db.CreateCommand("""
                    WITH owner AS (SELECT epoch FROM tasks WHERE id = $1 FOR KEY SHARE),
                    written AS (
                        INSERT INTO journal (task_id, seq, data, stdout_bytes, stderr_bytes, dropped_stdout, dropped_stderr)
                        SELECT $1, $2, $3, $5, $6, $7, $8
                        WHERE CASE WHEN EXISTS (SELECT 1 FROM owner) THEN NOT EXISTS (SELECT 1 FROM owner WHERE epoch <> $4) ELSE $4 = 0 END
                        RETURNING 1)
                    SELECT pg_notify('corral_journal', $1) FROM written
                    """);
                cmd.Parameters.Add(new NpgsqlParameter { Value = id });
                cmd.Parameters.Add(new NpgsqlParameter { Value = _next });
                cmd.Parameters.Add(new NpgsqlParameter { Value = data });
                cmd.Parameters.Add(new NpgsqlParameter { Value = epoch() });
                cmd.Parameters.Add(new NpgsqlParameter { Value = counts.Stdout });
                cmd.Parameters.Add(new NpgsqlParameter { Value = counts.Stderr });
                cmd.Parameters.Add(new NpgsqlParameter { Value = counts.Dropped?.Stdout ?? 0L });
                cmd.Parameters.Add(new NpgsqlParameter { Value = counts.Dropped?.Stderr ?? 0L });
                await using var reader = await cmd.ExecuteReaderAsync().ConfigureAwait(false);
                return await reader.ReadAsync().ConfigureAwait(false) ? true : throw new JournalFencedException(id);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                // An earlier attempt may have committed before the connection lost its answer (a database restart):
                // the chunk there is this one. Anything else means another writer appended: this one no longer owns the journal.
                return retried && await LandedAsync(data).ConfigureAwait(false) ? true : throw new JournalFencedException(id);
            }
        }

        /// <summary>Whether the chunk at the next position holds exactly <paramref name="data"/>.</summary>
        private async ValueTask<bool> LandedAsync(byte[] data)
        {
            await using var cmd = db.CreateCommand("SELECT data = $3 FROM journal WHERE task_id = $1 AND seq = $2");
            cmd.Parameters.Add(new NpgsqlParameter { Value = id });
            cmd.Parameters.Add(new NpgsqlParameter { Value = _next });
            cmd.Parameters.Add(new NpgsqlParameter { Value = data });
            return await cmd.ExecuteScalarAsync().ConfigureAwait(false) is true;
        }

        /// <summary>Drops whole chunks past <paramref name="length"/> (chunks are written whole, so nothing else can be torn).</summary>
        public void Truncate(long length)
        {
            long total = lengths.Sum(l => (long)l);
            int drop = 0;
            while (drop < lengths.Count && total > length)
                total -= lengths[lengths.Count - 1 - drop++];
            if (drop == 0)
                return;
            using var cmd = db.CreateCommand("DELETE FROM journal WHERE task_id = $1 AND seq >= $2");
            cmd.Parameters.Add(new NpgsqlParameter { Value = id });
            cmd.Parameters.Add(new NpgsqlParameter { Value = _next - drop });
            cmd.ExecuteNonQuery();
            lengths.RemoveRange(lengths.Count - drop, drop);
            _next -= drop;
        }

        public void Sync()
        {
        }

        public void Dispose()
        {
        }
    }

    /// <summary>
    /// One journal's chunks, to read: an index of their lengths (grown as the journal grows) and a read-ahead window of
    /// whole chunks, fetched about 256 KiB at a time.
    /// </summary>
    private sealed class Source(NpgsqlDataSource db, string id) : IJournalSource
    {
        private const long Window = 256 * 1024;

        private readonly List<Chunk> _index = [];
        private long _length;
        private byte[] _window = [];
        private long _windowStart;

        public long Length
        {
            get
            {
                Refresh();
                return _length;
            }
        }

        public List<Chunk> Chunks()
        {
            Refresh();
            return _index;
        }

        public int Read(long position, Span<byte> buffer)
        {
            if (position + buffer.Length > _length)
                Refresh();
            int done = 0;
            while (done < buffer.Length && position + done < _length)
            {
                long at = position + done;
                if (at < _windowStart || at >= _windowStart + _window.Length)
                    Fetch(at);
                int from = (int)(at - _windowStart);
                int n = Math.Min(buffer.Length - done, _window.Length - from);
                if (n <= 0)
                    break;
                _window.AsSpan(from, n).CopyTo(buffer[done..]);
                done += n;
            }

            return done;
        }

        public void Dispose()
        {
        }

        /// <summary>Learns of chunks written since the last look.</summary>
        private void Refresh()
        {
            using var cmd = db.CreateCommand("SELECT seq, octet_length(data) FROM journal WHERE task_id = $1 AND seq > $2 ORDER BY seq");
            cmd.Parameters.Add(new NpgsqlParameter { Value = id });
            cmd.Parameters.Add(new NpgsqlParameter { Value = _index.Count > 0 ? _index[^1].Seq : 0 });
            using var reader = cmd.ExecuteReader();
            while (reader.Read())
            {
                var chunk = new Chunk(reader.GetInt32(0), _length, reader.GetInt32(1));
                _index.Add(chunk);
                _length += chunk.Length;
            }
        }

        /// <summary>Loads the chunks from the one holding <paramref name="position"/> on, up to the window's size (at least one).</summary>
        private void Fetch(long position)
        {
            int first = _index.BinarySearch(new Chunk(0, position, 0), ChunkByStart.Instance);
            if (first < 0)
                first = ~first - 1;
            int last = first;
            long size = _index[first].Length;
            while (last + 1 < _index.Count && size + _index[last + 1].Length <= Window)
                size += _index[++last].Length;

            var window = new byte[size];
            int filled = 0;
            using (var cmd = db.CreateCommand("SELECT data FROM journal WHERE task_id = $1 AND seq BETWEEN $2 AND $3 ORDER BY seq"))
            {
                cmd.Parameters.Add(new NpgsqlParameter { Value = id });
                cmd.Parameters.Add(new NpgsqlParameter { Value = _index[first].Seq });
                cmd.Parameters.Add(new NpgsqlParameter { Value = _index[last].Seq });
                using var reader = cmd.ExecuteReader();
                while (reader.Read() && filled < window.Length)
                    filled += (int)reader.GetBytes(0, 0, window, filled, window.Length - filled);
            }

            _window = filled == window.Length ? window : window[..filled];
            _windowStart = _index[first].Start;
        }
    }

    /// <summary>A journal held in memory.</summary>
    private sealed class Bytes(byte[] data) : IJournalSource
    {
        public long Length => data.Length;

        public int Read(long position, Span<byte> buffer)
        {
            if (position >= data.Length)
                return 0;
            int n = (int)Math.Min(buffer.Length, data.Length - position);
            data.AsSpan((int)position, n).CopyTo(buffer);
            return n;
        }

        public void Dispose()
        {
        }
    }

    /// <summary>A chunk: its number, where it starts in the journal, its length.</summary>
    private readonly record struct Chunk(int Seq, long Start, int Length);

    private sealed class ChunkByStart : IComparer<Chunk>
    {
        public static readonly ChunkByStart Instance = new();

        public int Compare(Chunk x, Chunk y) => x.Start.CompareTo(y.Start);
    }
}
