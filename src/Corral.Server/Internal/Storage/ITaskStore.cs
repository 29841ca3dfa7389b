using Corral.Server.Api;

namespace Corral.Server.Internal.Storage;

/// <summary>
/// Where task records live: the seam between the task core and a database (SQLite on one node; PostgreSQL for a
/// fleet). Writes complete when they are durable. Reads never wait behind writes.
/// </summary>
internal interface ITaskStore : IAsyncDisposable
{
    /// <summary>
    /// Adds a new task's row. Completes when it is written (<paramref name="durability"/> says how far); throws
    /// <see cref="StoreException"/> when it could not be written in time or the disk is full, and then nothing was written.
    /// </summary>
    Task InsertAsync(NewTask task, Durability durability, CancellationToken cancellationToken);

    /// <summary>
    /// Saves a task's record. Completes when it is written (<paramref name="durability"/> says how far). A busy, locked or
    /// full database is retried with backoff until the write succeeds (a produced result is never given up) or the
    /// store is disposed.
    /// </summary>
    Task SaveAsync(TaskRecord record, Durability durability);

    /// <summary>Remembers a task's process tree, so that a start after a crash can kill what is left of it. Retried as <see cref="SaveAsync"/>.</summary>
    Task SaveTreeAsync(string id, TreeIdentity tree);

    /// <summary>Deletes a task's row; <c>false</c> when there was none.</summary>
    Task<bool> DeleteAsync(string id, CancellationToken cancellationToken);

    /// <summary>The stored record, or <c>null</c>.</summary>
    ValueTask<TaskRecord?> GetAsync(string id, CancellationToken cancellationToken);

    /// <summary>The task created with an idempotency key, with the hash of the body it was created with.</summary>
    ValueTask<IdempotentMatch?> FindByIdempotencyKeyAsync(string key, CancellationToken cancellationToken);

    /// <summary>A page of tasks, newest first.</summary>
    ValueTask<TaskListing> ListAsync(TaskQuery query, CancellationToken cancellationToken);

    /// <summary>How many tasks are stored in each status.</summary>
    ValueTask<Dictionary<TaskState, long>> CountByStatusAsync(CancellationToken cancellationToken);

    /// <summary>Tasks stored as queued or running: what a previous process left.</summary>
    ValueTask<IReadOnlyList<UnfinishedTask>> ListUnfinishedAsync(CancellationToken cancellationToken);

    /// <summary>Finished tasks that ended before <paramref name="cutoff"/>, oldest first.</summary>
    ValueTask<IReadOnlyList<string>> ListEndedBeforeAsync(DateTimeOffset cutoff, int limit, CancellationToken cancellationToken);
}

/// <summary>How far a write must have got before it counts as done.</summary>
internal enum Durability
{
    /// <summary>In the operating system's hands: it survives a crash of the server (the next write that must survive the machine takes it along).</summary>
    Server,

    /// <summary>On disk (fsync): it survives a crash of the machine. What is acknowledged to a client is written so.</summary>
    Machine,
}

/// <summary>A new task's row: its first record, the request as received (for a restart to queue it again) and that request's hash.</summary>
internal sealed record NewTask(TaskRecord Record, string RequestJson, string RequestHash)
{
    /// <summary>The session it holds while queued or running (one task per session, fleet-wide).</summary>
    public string? SessionKey { get; init; }

    /// <summary>The node that must run it (the one whose memory holds its request's secrets); <c>null</c> for any.</summary>
    public string? Affinity { get; init; }

    /// <summary>Its memory limit, for a node to claim only what fits.</summary>
    public long? MemoryBytes { get; init; }
}

/// <summary>How to find what is left of a task's process tree after a crash (<c>Uid</c>: its exclusive uid, when it had one).</summary>
internal sealed record TreeIdentity(string TreeId, string? CgroupPath, int Pid, int? Uid = null);

/// <summary>The task an idempotency key names, with the hash of the body it was created with.</summary>
internal sealed record IdempotentMatch(TaskRecord Record, string? RequestHash);

/// <summary>
/// A query of the history: by status, session, agent and a text found in the task (its id, request or record), a
/// page of at most <c>Limit</c> records, before the <see cref="TaskListing.Next"/> of the previous page. A page also ends
/// after the record that takes it to <see cref="PageChars"/> of stored JSON (a result may be megabytes), so a page costs
/// bounded memory however large the records it lists; it always holds one record when there is one.
/// </summary>
internal sealed record TaskQuery(TaskState? Status, string? SessionId, int Limit, long? Before, string? Agent = null, string? Text = null, string? Node = null)
{
    /// <summary>The characters of stored record JSON after which a page ends.</summary>
    public const int PageChars = 4 << 20;
}

/// <summary>A page of the history, and where the next one starts (the last record's sequence number; <c>null</c>: none follows).</summary>
internal sealed record TaskListing(IReadOnlyList<TaskRecord> Items, long? Next);

/// <summary>A row left queued or running by a previous process.</summary>
internal sealed record UnfinishedTask(TaskRecord Record, string RequestJson, TreeIdentity? Tree);

/// <summary>Why a write could not be done.</summary>
internal enum StoreFailure
{
    /// <summary>The database stayed busy or unreachable for longer than the write may wait.</summary>
    Unavailable,

    /// <summary>The disk is full.</summary>
    Full,

    /// <summary>A unique key exists already (an idempotency key).</summary>
    Conflict,

    /// <summary>The session has a queued or running task already (in the whole fleet).</summary>
    SessionBusy,

    /// <summary>This node no longer owns the task: its lease was lost and another node decided its end.</summary>
    Fenced,
}

/// <summary>A write that did not happen, and why.</summary>
internal sealed class StoreException(StoreFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public StoreFailure Failure { get; } = failure;
}
