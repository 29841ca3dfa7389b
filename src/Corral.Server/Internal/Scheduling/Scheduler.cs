using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Scheduling;

/// <summary>What became of a submitted plan: a task (new, or the one its idempotency key names), or a refusal.</summary>
internal sealed record Submission(ActiveTask? Task, TaskRecord? Record, bool Existing, Refusal? Refusal)
{
    public static Submission Refused(Refusal refusal) => new(null, null, false, refusal);

    public static Submission Refused(RefusalCode code, string message) => Refused(new Refusal(code, message));
}

/// <summary>
/// The queue and the slots: admits a plan into a bounded pool of running tasks with a bounded queue (one queued or
/// running task per session, idempotency keys honoured), starts tasks as slots free up, awaits each run and then
/// publishes its final record (journal and database; whichever is durable first ends the task for its waiters).
/// Cancels, deletes, and on shutdown stops running tasks through the ladder (queued ones stay queued for the next
/// start). Knows nothing of HTTP.
/// </summary>
internal sealed class Scheduler : IHostedService
{
    /// <summary>How long the end of a task waits for the database before it makes its journal durable instead.</summary>
    private static readonly TimeSpan DatabaseGrace = TimeSpan.FromMilliseconds(500);

    private readonly ITaskStore _store;
    private readonly IJournalStore _journals;
    private readonly TaskObservers _observers;
    private readonly TaskRunner _runner;
    private readonly StorageGuard _storage;
    private readonly ServerPaths _paths;
    private readonly CorralOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<Scheduler> _logger;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, ActiveTask> _active = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ActiveTask> _keys = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ActiveTask> _sessions = new(StringComparer.Ordinal);
    private readonly LinkedList<ActiveTask> _queue = new();
    private readonly HashSet<Task> _publishing = [];
    private readonly CancellationTokenSource _stopping = new();
    private int _slotsTaken;
    private long _committedMemory; // the memory limits of the tasks holding slots
    private ITimer? _recheck;
    private int _queueReserved;
    private volatile bool _draining;
    private Task? _syncLoop;

    public Scheduler(ITaskStore store, TaskRunner runner, StorageGuard storage, IJournalStore journals, ServerPaths paths, IOptions<CorralOptions> options,
        TimeProvider time, TaskObservers observers, IHostApplicationLifetime lifetime, ILogger<Scheduler> logger)
    {
        _observers = observers;
        _journals = journals;
        _store = store;
        _runner = runner;
        _storage = storage;
        _paths = paths;
        _options = options.Value;
        _time = time;
        _logger = logger;
        // Stopping starts before the web server waits for open requests: an event stream or a ?wait on a running task
        // only ends when the task does, so the tasks must start stopping first.
        lifetime.ApplicationStopping.Register(BeginDrain);
    }

    public bool Draining => _draining;

    /// <summary>The task if the server holds it in memory (queued, running, or its end not yet in the database).</summary>
    public ActiveTask? Find(string id)
    {
        lock (_gate)
            return _active.GetValueOrDefault(id);
    }

    /// <summary>The newest record: the one in memory, else the stored one.</summary>
    public async ValueTask<TaskRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        Find(id)?.Record ?? await _store.GetAsync(id, cancellationToken).ConfigureAwait(false);

    /// <summary>A page of the history, with records of tasks in memory brought up to date.</summary>
    public async ValueTask<TaskListing> ListAsync(TaskQuery query, CancellationToken cancellationToken)
    {
        var page = await _store.ListAsync(query, cancellationToken).ConfigureAwait(false);
        var items = new List<TaskRecord>(page.Items.Count);
        foreach (var stored in page.Items)
        {
            var record = Find(stored.Id)?.Record ?? stored;
            // The database may lag behind memory (a final record not yet written): filter on what is true now.
            if (query.Status is null || record.Status == query.Status)
                items.Add(record);
        }

        // A short page from the database is the last one, however many items the filter kept.
        return new TaskListing(items, page.Items.Count == query.Limit ? page.LastSeq : null);
    }

    /// <summary>
    /// Admits a plan: refuses it, returns the task its idempotency key names, or queues or starts it once its row is
    /// written. <paramref name="acknowledgeAtOnce"/>: the caller tells the client about the task before its end (no
    /// <c>?wait</c>), so the row must survive the machine first; otherwise the final record's fsync takes it along.
    /// </summary>
    public async Task<Submission> SubmitAsync(TaskPlan plan, bool acknowledgeAtOnce, CancellationToken cancellationToken)
    {
        if (_storage.IsFull)
            return Submission.Refused(RefusalCode.StorageFull, "The disk of the server's data directory is full.");
        if (plan.IdempotencyKey is { } key && await FindIdempotentAsync(key, plan.RequestHash, cancellationToken).ConfigureAwait(false) is { } earlier)
            return earlier;

        var record = new TaskRecord
        {
            Id = plan.Id,
            Status = TaskState.Queued,
            Agent = plan.Agent,
            SessionId = plan.SessionId,
            Workdir = plan.Request.WorkingDirectory,
            CreatedAt = _time.GetUtcNow(),
            IdempotencyKey = plan.IdempotencyKey,
            Metadata = plan.Metadata,
        };

        bool slot = false;
        ActiveTask? raced = null;
        lock (_gate)
        {
            if (_draining)
                return Submission.Refused(RefusalCode.Draining, "The server is stopping.");
            if (plan.IdempotencyKey is { } k && _keys.TryGetValue(k, out raced))
            {
            }
            else if (plan.SessionKey is { } session && _sessions.ContainsKey(session))
            {
                return Submission.Refused(RefusalCode.SessionBusy, $"Session '{session}' already has a queued or running task.");
            }
            else
            {
                int queued = _queue.Count + _queueReserved;
                // First come, first served: a free slot goes to the queue's head before a newcomer, and only to a task
                // whose memory fits.
                slot = _slotsTaken < _options.MaxConcurrentTasks && queued == 0
                    && (record = WithQueueReason(record, MemoryReason(plan))).QueueReason is null;
                if (!slot && queued >= _options.MaxQueuedTasks)
                    return Submission.Refused(RefusalCode.Busy, $"{_slotsTaken} tasks are running and {queued} are queued.");
                if (slot)
                {
                    _slotsTaken++;
                    _committedMemory += MemoryOf(plan);
                }
                else
                {
                    _queueReserved++;
                }
            }
        }

        if (raced is not null)
            return await SameKeyAsync(raced, plan, cancellationToken).ConfigureAwait(false);

        return await CreateAsync(plan, record, slot, acknowledgeAtOnce ? Durability.Machine : Durability.Server, cancellationToken).ConfigureAwait(false);
    }

    private async Task<Submission> CreateAsync(TaskPlan plan, TaskRecord record, bool slot, Durability durability, CancellationToken cancellationToken)
    {
        JournalWriter journal;
        try
        {
            journal = _journals.Create(plan.Id);
            journal.AddEvent("task.status", new { status = TaskState.Queued, at = record.CreatedAt });
            journal.Commit();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Unreserve(null, plan, slot);
            DeleteFiles(plan.Id);
            if (Files.IsOutOfSpace(e))
            {
                _storage.ReportFull();
                return Submission.Refused(RefusalCode.StorageFull, "The disk of the server's data directory is full.");
            }

            _logger.LogError(e, "Task {Id}: could not create its journal", plan.Id);
            return Submission.Refused(RefusalCode.StorageUnavailable, "The server could not write its data directory: " + e.Message);
        }

        var task = new ActiveTask(plan, record, journal);
        lock (_gate)
            AddLocked(task);

        try
        {
            await _store.InsertAsync(new NewTask(task.Record, plan.RequestJson, plan.RequestHash), durability, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is StoreException or OperationCanceledException)
        {
            Unreserve(task, plan, slot);
            journal.Dispose();
            DeleteFiles(plan.Id);
            task.Inserted(false);
            switch (e)
            {
                case StoreException { Failure: StoreFailure.Conflict } when plan.IdempotencyKey is { } key:
                    return await FindIdempotentAsync(key, plan.RequestHash, cancellationToken).ConfigureAwait(false)
                        ?? Submission.Refused(RefusalCode.StorageUnavailable, "The task could not be stored.");
                case StoreException { Failure: StoreFailure.Full }:
                    _storage.ReportFull();
                    return Submission.Refused(RefusalCode.StorageFull, "The disk of the server's data directory is full.");
                case StoreException store:
                    return Submission.Refused(RefusalCode.StorageUnavailable, store.Message);
                default:
                    throw;
            }
        }

        task.Inserted(true);
        _observers.Accepted(task.Record);
        lock (_gate)
        {
            if (slot)
            {
                StartLocked(task);
            }
            else
            {
                _queueReserved--;
                _queue.AddLast(task);
                if (_draining)
                    ReleaseQueuedLocked();
                else
                    StartNextLocked(); // a slot may have freed meanwhile, or the wait for memory must be watched
            }
        }

        return new Submission(task, task.Record, false, null);
    }

    /// <summary>A concurrent request with the same idempotency key: the same task once its row is durable, or a conflict.</summary>
    private async Task<Submission> SameKeyAsync(ActiveTask existing, TaskPlan plan, CancellationToken cancellationToken)
    {
        if (!await existing.WaitInsertedAsync(cancellationToken).ConfigureAwait(false))
            return await SubmitAsync(plan, acknowledgeAtOnce: true, cancellationToken).ConfigureAwait(false); // it was refused: try again as new
        if (existing.Plan?.RequestHash != plan.RequestHash)
            return Submission.Refused(RefusalCode.IdempotencyConflict, $"Task {existing.Id} was created with this idempotency key and a different body.");
        return new Submission(existing, existing.Record, true, null);
    }

    private async Task<Submission?> FindIdempotentAsync(string key, string hash, CancellationToken cancellationToken)
    {
        ActiveTask? active;
        lock (_gate)
            active = _keys.GetValueOrDefault(key);
        if (active is not null && await active.WaitInsertedAsync(cancellationToken).ConfigureAwait(false))
        {
            return active.Plan?.RequestHash == hash
                ? new Submission(active, active.Record, true, null)
                : Submission.Refused(RefusalCode.IdempotencyConflict, $"Task {active.Id} was created with this idempotency key and a different body.");
        }

        if (await _store.FindByIdempotencyKeyAsync(key, cancellationToken).ConfigureAwait(false) is not { } found)
            return null;
        if (found.RequestHash != hash)
            return Submission.Refused(RefusalCode.IdempotencyConflict, $"Task {found.Record.Id} was created with this idempotency key and a different body.");
        var live = Find(found.Record.Id);
        return new Submission(live, live?.Record ?? found.Record, true, null);
    }

    /// <summary>Makes the task's row survive the machine, as it is now: before telling a client about a task that has not ended.</summary>
    public Task MakeDurableAsync(ActiveTask task) => _store.SaveAsync(task.Record, Durability.Machine);

    /// <summary>Cancels a task: a queued one ends at once, a running one goes through the ladder. <c>null</c> for an unknown id.</summary>
    public async Task<TaskRecord?> CancelAsync(string id, CancellationToken cancellationToken)
    {
        ActiveTask? task;
        bool wasQueued = false;
        lock (_gate)
        {
            task = _active.GetValueOrDefault(id);
            if (task is not null && _queue.Remove(task))
                wasQueued = true;
        }

        if (task is null)
            return await _store.GetAsync(id, cancellationToken).ConfigureAwait(false);
        task.RequestStop(StopReason.Cancel);
        if (wasQueued)
            _ = Track(PublishAsync(task, TaskOutcome.Unstarted(task.Record, StopReason.Cancel, _time.GetUtcNow()), heldSlot: false));
        return task.Record; // final already for a queued task: PublishAsync sets it before it waits for anything
    }

    /// <summary>Deletes a finished task with its files: <c>null</c> when it is gone, or a refusal (unknown, or still active).</summary>
    public async Task<Refusal?> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        if (Find(id) is { } active)
        {
            if (!active.Record.IsTerminal)
                return new Refusal(RefusalCode.TaskActive, $"Task {id} is {JsonNaming(active.Record.Status)}: cancel it first, or wait for its end.");
            // Ended, its final record on its way to the database: wait for that, briefly.
            if (!await active.Stored.WaitAsync(TimeSpan.FromSeconds(5), _time, cancellationToken).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default).ConfigureAwait(false))
                return new Refusal(RefusalCode.TaskActive, $"Task {id} has ended; its final record is still being written. Try again in a moment.");
        }

        if (await _store.GetAsync(id, cancellationToken).ConfigureAwait(false) is not { } record)
            return new Refusal(RefusalCode.NotFound, $"No task '{id}'.");
        if (!record.IsTerminal)
            return new Refusal(RefusalCode.TaskActive, $"Task {id} is {JsonNaming(record.Status)}.");
        // Files first: a crash in between leaves a row without files, which a second delete removes.
        DeleteFiles(id);
        await _store.DeleteAsync(id, cancellationToken).ConfigureAwait(false);
        return null;
    }

    /// <summary>Queues again a task that a previous process accepted and never started.</summary>
    public void Requeue(TaskPlan plan, TaskRecord record)
    {
        var journal = _journals.Open(plan.Id);
        var task = new ActiveTask(plan, record, journal);
        task.Inserted(true);
        lock (_gate)
        {
            AddLocked(task);
            _queue.AddLast(task);
            StartNextLocked();
        }
    }

    /// <summary>
    /// Publishes the final record of a task a previous process left unfinished (recovery), and holds it in memory until
    /// the database has it. <paramref name="journaled"/>: the journal holds that end already (only the row is missing).
    /// </summary>
    public Task FinishRecoveredAsync(TaskRecord final, bool journaled)
    {
        var journal = _journals.Open(final.Id);
        var task = new ActiveTask(final.Id, null, final, journal);
        task.Inserted(true);
        lock (_gate)
            AddLocked(task);
        return Track(PublishAsync(task, final, heldSlot: false, journaled));
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _syncLoop = SyncLoopAsync(_stopping.Token);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        BeginDrain();
        Task[] publishing;
        lock (_gate)
            publishing = [.. _publishing];
        try
        {
            await Task.WhenAll(publishing).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _logger.LogError("Shutdown deadline passed with {Count} task(s) still stopping", publishing.Count(t => !t.IsCompleted));
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        lock (_gate)
            _recheck?.Dispose();
        if (_syncLoop is not null)
            await _syncLoop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        try
        {
            _journals.Sync(); // what the last interval had not made durable yet
        }
        catch (IOException e)
        {
            _logger.LogWarning(e, "Could not make the task journals durable at shutdown");
        }
    }

    /// <summary>Refuses new tasks, lets go of the queued ones (they stay queued for the next start) and stops the running ones. Idempotent.</summary>
    private void BeginDrain()
    {
        List<ActiveTask> running;
        lock (_gate)
        {
            _draining = true;
            ReleaseQueuedLocked();
            running = [.. _active.Values];
        }

        foreach (var task in running)
            task.RequestStop(StopReason.Shutdown);
    }

    private void ReleaseQueuedLocked()
    {
        foreach (var task in _queue)
        {
            RemoveLocked(task);
            task.Journal.Dispose();
            task.Release();
        }

        _queue.Clear();
    }

    private void StartLocked(ActiveTask task) => Track(Task.Run(() => RunAndPublishAsync(task)));

    /// <summary>Remembers work that shutdown must wait for (a run and its publication).</summary>
    private Task Track(Task work)
    {
        lock (_gate)
            _publishing.Add(work);
        _ = work.ContinueWith(t =>
        {
            lock (_gate)
                _publishing.Remove(t);
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        return work;
    }

    private void StartNextLocked()
    {
        while (!_draining && _slotsTaken < _options.MaxConcurrentTasks && _queue.First is { } next)
        {
            var task = next.Value;
            if (MemoryReason(task.Plan) is { } reason)
            {
                // It waits, and says why; memory is looked at again in a second (or when a task ends).
                if (task.Record.QueueReason != reason)
                {
                    task.Record = task.Record with { QueueReason = reason };
                    _observers.Updated(task.Record);
                    task.Journal.AddEvent("task.status", new { status = TaskState.Queued, at = _time.GetUtcNow(), queueReason = reason });
                    try
                    {
                        task.Journal.Commit();
                    }
                    catch (IOException)
                    {
                    }
                }

                _recheck ??= _time.CreateTimer(_ =>
                {
                    lock (_gate)
                    {
                        _recheck?.Dispose();
                        _recheck = null;
                        StartNextLocked();
                    }
                }, null, TimeSpan.FromSeconds(1), Timeout.InfiniteTimeSpan);
                return;
            }

            _queue.RemoveFirst();
            _slotsTaken++;
            _committedMemory += MemoryOf(task.Plan);
            StartLocked(task);
        }
    }

    /// <summary>Why memory keeps a task from starting now, or <c>null</c>.</summary>
    private string? MemoryReason(TaskPlan? plan) => MemoryGate.Check(plan?.Resources?.MemoryMaxBytes, _committedMemory, MemoryFacts.Read(), _options.Limits);

    private static long MemoryOf(TaskPlan? plan) => plan?.Resources?.MemoryMaxBytes ?? 0;

    private static TaskRecord WithQueueReason(TaskRecord record, string? reason) => reason is null ? record : record with { QueueReason = reason };

    private async Task RunAndPublishAsync(ActiveTask task)
    {
        RunResult result;
        try
        {
            result = await _runner.RunAsync(task).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id} failed unexpectedly", task.Id);
            result = new RunResult(null, null, task.StopReason, new RunFailure(ErrorCodes.Internal, "Internal error: " + e.Message), null);
        }

        var plan = task.Plan!;
        await PublishAsync(task, TaskOutcome.Final(task.Record, result, plan.Timeout, plan.StallTimeout, _time.GetUtcNow()), heldSlot: true).ConfigureAwait(false);
    }

    /// <summary>
    /// The end of a task: the record in memory at once (and the slot and session freed, so whoever sees the end can
    /// resume the session right away), then the final events in the journal and the record in the database; the task
    /// ends for its waiters when the first of those is durable, and leaves memory when the database has it.
    /// </summary>
    private async Task PublishAsync(ActiveTask task, TaskRecord final, bool heldSlot, bool journaled = false)
    {
        task.Record = final;
        final = task.Record; // masked
        lock (_gate)
        {
            ForgetLocked(task);
            if (heldSlot)
            {
                _slotsTaken--;
                _committedMemory -= MemoryOf(task.Plan);
                StartNextLocked();
            }
        }

        var inJournal = journaled ? Task.CompletedTask : AppendEndAsync(task.Journal, final);
        var saved = _store.SaveAsync(final, Durability.Machine);
        // The end is durable once the database has it. If the database cannot take it in time (locked, full), the
        // journal, which holds the same final record, is made durable instead: the next start reconciles from it.
        if (await Task.WhenAny(saved, Task.Delay(DatabaseGrace, _time)).ConfigureAwait(false) != saved || !saved.IsCompletedSuccessfully)
        {
            try
            {
                await inJournal.ConfigureAwait(false);
                await Task.Run(task.Journal.Sync).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                _logger.LogError(e, "Task {Id}: its end is neither in the database nor durable in its journal yet", task.Id);
                await saved.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }

        task.MarkEnded(final);
        _observers.Ended(final);
        _logger.LogInformation("Task {Id} ended: {Status} {Code}", task.Id, final.Status, final.Error?.Code);
        try
        {
            await saved.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id}: its final record is only in its journal; the next start writes it to the database", task.Id);
        }

        await inJournal.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        task.Journal.Dispose();
        lock (_gate)
            RemoveLocked(task);
        task.MarkStored();
    }

    /// <summary>The final events in the journal (committed, not yet durable); a full disk is retried (the reserve has been given back for this).</summary>
    private async Task AppendEndAsync(JournalWriter journal, TaskRecord final)
    {
        journal.AddEvent("task.status", new { status = final.Status, at = final.EndedAt });
        journal.AddEvent("task.result", final);
        journal.AddEvent("task.end", new { status = final.Status, error = final.Error });
        var delay = TimeSpan.FromMilliseconds(50);
        while (true)
        {
            try
            {
                journal.Commit();
                return;
            }
            catch (Exception e) when (Files.IsOutOfSpace(e) && !_stopping.IsCancellationRequested)
            {
                _storage.ReportFull();
                await Task.Delay(delay, _time).ConfigureAwait(false);
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromSeconds(2).Ticks));
            }
        }
    }

    /// <summary>Makes every journal written since the last tick durable (one syncfs), every <c>Corral:SyncIntervalSeconds</c>.</summary>
    private async Task SyncLoopAsync(CancellationToken cancellationToken)
    {
        if (_options.SyncIntervalSeconds <= 0)
            return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(_options.SyncIntervalSeconds), _time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                try
                {
                    await Task.Run(_journals.Sync, cancellationToken).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    if (Files.IsOutOfSpace(e))
                        _storage.ReportFull();
                    _logger.LogWarning(e, "Could not make the task journals durable");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private void Unreserve(ActiveTask? task, TaskPlan plan, bool slot)
    {
        lock (_gate)
        {
            if (task is not null)
                RemoveLocked(task);

            if (slot)
            {
                _slotsTaken--;
                _committedMemory -= MemoryOf(plan);
                StartNextLocked();
            }
            else
            {
                _queueReserved--;
            }
        }
    }

    private void AddLocked(ActiveTask task)
    {
        _active[task.Id] = task;
        if (task.IdempotencyKey is { } key)
            _keys[key] = task;
        if (task.SessionKey is { } session)
            _sessions[session] = task;
    }

    /// <summary>Frees the task's session: whoever sees its end may resume that session at once.</summary>
    private void ForgetLocked(ActiveTask task)
    {
        if (task.SessionKey is { } session && _sessions.GetValueOrDefault(session) == task)
            _sessions.Remove(session);
    }

    private void RemoveLocked(ActiveTask task)
    {
        ForgetLocked(task);
        if (_active.GetValueOrDefault(task.Id) == task)
            _active.Remove(task.Id);
        if (task.IdempotencyKey is { } key && _keys.GetValueOrDefault(key) == task)
            _keys.Remove(key);
    }

    private void DeleteFiles(string id)
    {
        try
        {
            string dir = _paths.TaskDirectory(id);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Task {Id}: could not delete its files", id);
        }
    }

    private static string JsonNaming(TaskState state) => System.Text.Json.JsonNamingPolicy.CamelCase.ConvertName(state.ToString());
}
