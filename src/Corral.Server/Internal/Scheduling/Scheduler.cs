using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Fleet;
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
/// <remarks>
/// In a fleet (<see cref="FleetNode"/>), the queue is the shared database's: a submission is a queued row that any
/// node with a free slot may claim (<see cref="ReserveSlot"/>, <see cref="StartClaimed"/>), and only claimed tasks are
/// held here; cancels and waits of tasks held elsewhere go through the database.
/// </remarks>
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
    private readonly FleetNode? _fleet;
    private readonly FleetProcesses? _fleetProcesses;
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
    private readonly MemoryWatch _memory;

    public Scheduler(ITaskStore store, TaskRunner runner, StorageGuard storage, IJournalStore journals, ServerPaths paths, IOptions<CorralOptions> options,
        TimeProvider time, TaskObservers observers, IHostApplicationLifetime lifetime, ILogger<Scheduler> logger, FleetNode? fleet = null, FleetProcesses? fleetProcesses = null)
    {
        _fleet = fleet;
        _fleetProcesses = fleetProcesses;
        _observers = observers;
        _journals = journals;
        _store = store;
        _runner = runner;
        _storage = storage;
        _paths = paths;
        _options = options.Value;
        _time = time;
        _memory = new MemoryWatch(time, MemoryFacts.Read);
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

    /// <summary>A task's live processes: its tree's when this node runs it, else asked of the fleet node that does; <c>null</c> for no such task.</summary>
    public async ValueTask<ProcessLedger?> ProcessesAsync(string id, CancellationToken cancellationToken)
    {
        if (LocalProcesses(id) is { } local)
            return new ProcessLedger(true, [.. local]);
        if (await GetAsync(id, cancellationToken).ConfigureAwait(false) is not { } record)
            return null;
        bool running = record.Status == TaskState.Running;
        if (running && _fleetProcesses is not null && record.Node is { } node && node != _fleet!.Node)
            return new ProcessLedger(true, await _fleetProcesses.AskAsync(id, node, cancellationToken).ConfigureAwait(false));
        return new ProcessLedger(running, []);
    }

    /// <summary>
    /// The live processes of a task this node is running, their command lines masked as its records are (a process
    /// may carry a secret in its argv); <c>null</c> if it runs no such task.
    /// </summary>
    public IReadOnlyList<Corral.Processes.LiveProcess>? LocalProcesses(string id)
    {
        if (Find(id) is not { Tree: { } tree } active || active.Record.IsTerminal)
            return null;
        var processes = tree.GetProcesses();
        return active.Plan?.Mask is { } mask
            ? [.. processes.Select(p => p with { CommandLine = mask.Apply(p.CommandLine) })]
            : processes;
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

        // The store's page says whether another follows, however many items the filter kept.
        return new TaskListing(items, page.Next);
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
        if (plan.IdempotencyKey is { } key && await FindIdempotentAsync(key, plan, cancellationToken).ConfigureAwait(false) is { } earlier)
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
            Webhook = plan.Webhook,
        };
        if (_fleet is not null)
            return await SubmitToFleetAsync(_fleet, plan, record, cancellationToken).ConfigureAwait(false);

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
        var (journal, refused) = CreateJournal(plan, record);
        if (journal is null)
        {
            Unreserve(null, plan, slot);
            return refused!;
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
            return await InsertFailedAsync(e, plan, cancellationToken).ConfigureAwait(false);
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

    /// <summary>A new task's journal with its first event, or the refusal when it cannot be written.</summary>
    private (JournalWriter? Journal, Submission? Refused) CreateJournal(TaskPlan plan, TaskRecord record)
    {
        try
        {
            var journal = _journals.Create(plan.Id);
            journal.AddEvent("task.status", new { status = TaskState.Queued, at = record.CreatedAt });
            journal.Commit();
            return (journal, null);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Npgsql.NpgsqlException)
        {
            DeleteFiles(plan.Id);
            if (Files.IsOutOfSpace(e))
            {
                _storage.ReportFull();
                return (null, Submission.Refused(RefusalCode.StorageFull, "The disk of the server's data directory is full."));
            }

            _logger.LogError(e, "Task {Id}: could not create its journal", plan.Id);
            return (null, Submission.Refused(RefusalCode.StorageUnavailable, "The server could not write the task's journal: " + e.Message));
        }
    }

    /// <summary>What a client is told when a new task's row could not be written.</summary>
    private async Task<Submission> InsertFailedAsync(Exception e, TaskPlan plan, CancellationToken cancellationToken)
    {
        switch (e)
        {
            case StoreException { Failure: StoreFailure.Conflict } when plan.IdempotencyKey is { } key:
                return await FindIdempotentAsync(key, plan, cancellationToken).ConfigureAwait(false)
                    ?? Submission.Refused(RefusalCode.StorageUnavailable, "The task could not be stored.");
            case StoreException { Failure: StoreFailure.SessionBusy }:
                return Submission.Refused(RefusalCode.SessionBusy, $"Session '{plan.SessionKey}' already has a queued or running task.");
            case StoreException { Failure: StoreFailure.Full }:
                _storage.ReportFull();
                return Submission.Refused(RefusalCode.StorageFull, "The disk of the server's data directory is full.");
            case StoreException store:
                return Submission.Refused(RefusalCode.StorageUnavailable, store.Message);
            default:
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
                return null!;
        }
    }

    /// <summary>
    /// Fleet mode: the task becomes a queued row of the shared database, for whichever node has a free slot first (this
    /// one is woken too). A request with secrets can run only here, where they are held in memory; a resumed session, only
    /// on the node that holds its state.
    /// </summary>
    private async Task<Submission> SubmitToFleetAsync(FleetNode fleet, TaskPlan plan, TaskRecord record, CancellationToken cancellationToken)
    {
        if (_draining)
            return Submission.Refused(RefusalCode.Draining, "The server is stopping.");
        long queued = await fleet.Store.QueuedCountAsync(cancellationToken).ConfigureAwait(false);
        if (queued >= _options.MaxQueuedTasks)
            return Submission.Refused(RefusalCode.Busy, $"{queued} tasks are queued in the fleet.");
        string? affinity = plan.StoredRequestIncomplete ? fleet.Node
            : plan.SessionKey is { } session ? await fleet.Store.LastNodeOfSessionAsync(session, cancellationToken).ConfigureAwait(false)
            : null;

        var (journal, refused) = CreateJournal(plan, record);
        if (journal is null)
            return refused!;
        journal.Dispose();
        if (plan.StoredRequestIncomplete)
            fleet.Hold(plan); // before the row exists: a claim may follow the insert at once
        try
        {
            await _store.InsertAsync(new NewTask(record, plan.RequestJson, plan.RequestHash)
            {
                SessionKey = plan.SessionKey,
                Affinity = affinity,
                MemoryBytes = MemoryOf(plan),
            }, Durability.Machine, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is StoreException or OperationCanceledException)
        {
            fleet.Take(plan.Id);
            DeleteJournal(plan.Id);
            return await InsertFailedAsync(e, plan, cancellationToken).ConfigureAwait(false);
        }

        _observers.Accepted(record);
        fleet.Wake();
        await fleet.Store.NotifyAsync(Storage.Postgres.PostgresNotifications.Queue, plan.Id).ConfigureAwait(false);
        return new Submission(null, record, false, null);
    }

    /// <summary>
    /// Fleet mode: takes a slot for a task this node is about to claim, and says up to how much memory its limit may hold;
    /// <c>null</c> when no task may start here now (no free slot, stopping, memory pressure). Give it back with
    /// <see cref="ReleaseSlot"/> when no task was claimed.
    /// </summary>
    public long? ReserveSlot()
    {
        lock (_gate)
        {
            if (_draining || _slotsTaken >= _options.MaxConcurrentTasks)
                return null;
            if (MemoryGate.Room(_committedMemory, _memory.Current, _options.Limits) is not { } room)
                return null;
            _slotsTaken++;
            return room;
        }
    }

    /// <summary>Gives back a slot taken by <see cref="ReserveSlot"/> that no task was claimed for.</summary>
    public void ReleaseSlot()
    {
        lock (_gate)
            _slotsTaken--;
    }

    /// <summary>
    /// Fleet mode: runs a task this node has claimed in the slot <see cref="ReserveSlot"/> took, or, when it cannot run
    /// here (<paramref name="final"/>: refused by this node's admission, its secrets lost), ends it at once.
    /// </summary>
    public void StartClaimed(TaskPlan? plan, TaskRecord record, TaskRecord? final)
    {
        JournalWriter journal;
        try
        {
            journal = _journals.Open(record.Id);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Npgsql.NpgsqlException)
        {
            _logger.LogError(e, "Task {Id}: could not open its journal after claiming it", record.Id);
            ReleaseSlot();
            var failed = record with { Status = TaskState.Failed, EndedAt = _time.GetUtcNow(), Error = new TaskError(ErrorCodes.SpawnFailed, "The node that claimed the task could not open its journal: " + e.Message) };
            _ = _store.SaveAsync(failed, Durability.Machine).ContinueWith(t => _logger.LogError(t.Exception, "Task {Id}: its failure could not be recorded", record.Id),
                CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            return;
        }

        var task = new ActiveTask(record.Id, plan, record, journal) { ClaimedAt = _time.GetTimestamp() };
        task.Inserted(true);
        lock (_gate)
        {
            AddLocked(task);
            if (final is null)
            {
                _committedMemory += MemoryOf(plan);
                StartLocked(task);
                return;
            }
        }

        Track(PublishAsync(task, final, heldSlot: true));
    }

    /// <summary>The tasks this node runs now (not those only being recorded).</summary>
    public IReadOnlyList<ActiveTask> Running()
    {
        lock (_gate)
            return [.. _active.Values.Where(t => t.Plan is not null && !t.Record.IsTerminal && !_queue.Contains(t))];
    }

    /// <summary>
    /// Waits up to <paramref name="limit"/> for a task to end: the final record and <c>true</c>, or the record as it is
    /// then and <c>false</c>. A task held by another node of a fleet is waited for through the database.
    /// </summary>
    public async Task<(TaskRecord Record, bool Ended)> WaitAsync(Submission submission, TimeSpan limit, CancellationToken cancellationToken)
    {
        // Cancelled on the way out, so a task that ends first does not leave its deadline's timer behind for minutes.
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            return await WaitAsync(submission, Task.Delay(limit, _time, waiting.Token)).ConfigureAwait(false);
        }
        finally
        {
            await waiting.CancelAsync().ConfigureAwait(false);
        }
    }

    private async Task<(TaskRecord Record, bool Ended)> WaitAsync(Submission submission, Task deadline)
    {
        string id = submission.Record!.Id;
        var task = submission.Task;
        while (true)
        {
            task ??= Find(id);
            if (task is not null)
            {
                var over = await Task.WhenAny(task.Ended, task.Released, deadline).ConfigureAwait(false);
                if (over == task.Ended)
                    return (await task.Ended.ConfigureAwait(false), true);
                return (task.Record, false);
            }

            if (_fleet is null)
                return (submission.Record, false);
            // The signal is taken before the look, so an end in between is not missed; a lost one costs a poll.
            var signal = _fleet.Notifications.Ended(id);
            var record = await _store.GetAsync(id, CancellationToken.None).ConfigureAwait(false) ?? submission.Record;
            if (record.IsTerminal)
                return (record, true);
            if (await Task.WhenAny(signal, deadline).ConfigureAwait(false) == deadline)
                return (await GetAsync(id, CancellationToken.None).ConfigureAwait(false) ?? record, false);
        }
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

    private async Task<Submission?> FindIdempotentAsync(string key, TaskPlan plan, CancellationToken cancellationToken)
    {
        ActiveTask? active;
        lock (_gate)
            active = _keys.GetValueOrDefault(key);
        if (active is not null && await active.WaitInsertedAsync(cancellationToken).ConfigureAwait(false))
        {
            return active.Plan?.RequestHash == plan.RequestHash
                ? new Submission(active, active.Record, true, null)
                : Submission.Refused(RefusalCode.IdempotencyConflict, $"Task {active.Id} was created with this idempotency key and a different body.");
        }

        if (await _store.FindByIdempotencyKeyAsync(key, cancellationToken).ConfigureAwait(false) is not { } found)
            return null;
        if (!RequestHash.Matches(found.RequestHash, plan.RequestHash, plan.RequestJson))
            return Submission.Refused(RefusalCode.IdempotencyConflict, $"Task {found.Record.Id} was created with this idempotency key and a different body.");
        var live = Find(found.Record.Id);
        return new Submission(live, live?.Record ?? found.Record, true, null);
    }

    /// <summary>
    /// Makes the task's row survive the machine, as it is now: before telling a client about a task that has not ended.
    /// <c>false</c> when that cannot be done within <paramref name="limit"/> (the database is locked, the disk full).
    /// </summary>
    public async Task<bool> MakeDurableAsync(ActiveTask task, TimeSpan limit)
    {
        try
        {
            await _store.SaveAsync(task.Record, Durability.Machine).WaitAsync(limit, _time).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is TimeoutException or StoreException)
        {
            return false; // the write goes on in the background
        }
    }

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
            return _fleet is null ? await _store.GetAsync(id, cancellationToken).ConfigureAwait(false) : await CancelInFleetAsync(_fleet, id, cancellationToken).ConfigureAwait(false);
        task.RequestStop(StopReason.Cancel);
        if (wasQueued)
            _ = Track(PublishAsync(task, TaskOutcome.Unstarted(task.Record, StopReason.Cancel, _time.GetUtcNow()), heldSlot: false));
        return task.Record; // final already for a queued task: PublishAsync sets it before it waits for anything
    }

    /// <summary>Fleet mode, a task this node does not hold: a queued one ends now; the node running one is told (it runs the ladder).</summary>
    private async Task<TaskRecord?> CancelInFleetAsync(FleetNode fleet, string id, CancellationToken cancellationToken)
    {
        var now = _time.GetUtcNow();
        if (await fleet.Store.EndQueuedAsync(id, r => TaskOutcome.Unstarted(r, StopReason.Cancel, now), flagIfRunning: true, cancellationToken).ConfigureAwait(false) is not { } ended)
            return await _store.GetAsync(id, cancellationToken).ConfigureAwait(false);
        fleet.Take(id);
        await RecordEndedElsewhereAsync(ended.Record, ended.Epoch).ConfigureAwait(false);
        return ended.Record;
    }

    /// <summary>
    /// Fleet mode: a task ended by this node without running here (cancelled while queued, taken over from a node that
    /// stopped renewing): its final events go to its journal under the epoch that ended it (unless they are there
    /// already: <paramref name="journaled"/>), and the fleet is told.
    /// </summary>
    public async Task RecordEndedElsewhereAsync(TaskRecord final, long epoch, bool journaled = false)
    {
        var fleet = _fleet!;
        try
        {
            if (!journaled)
            {
                using var journal = fleet.Journals.Open(final.Id, epoch);
                await AppendEndAsync(journal, final).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or Npgsql.NpgsqlException)
        {
            // Followers still end: a journal without task.end ends with the record's status 30 s after the task became final.
            _logger.LogWarning(e, "Task {Id}: its end could not be added to its journal", final.Id);
        }

        _observers.Ended(final);
        await fleet.Store.NotifyAsync(Storage.Postgres.PostgresNotifications.End, final.Id).ConfigureAwait(false);
    }

    private readonly SemaphoreSlim _deletes = new(1, 1);

    /// <summary>Deletes a finished task with its files: <c>null</c> when it is gone, or a refusal (unknown, or still active).</summary>
    public async Task<Refusal?> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        if (Find(id) is { } active)
        {
            if (!active.Record.IsTerminal)
                return new Refusal(RefusalCode.TaskActive, $"Task {id} is {ApiJson.Name(active.Record.Status)}: cancel it first, or wait for its end.");
            // Ended, its final record on its way to the database: wait for that, briefly.
            if (!await active.Stored.WaitAsync(TimeSpan.FromSeconds(5), _time, cancellationToken).ContinueWith(t => t.IsCompletedSuccessfully, TaskScheduler.Default).ConfigureAwait(false))
                return new Refusal(RefusalCode.TaskActive, $"Task {id} has ended; its final record is still being written. Try again in a moment.");
        }

        // One delete at a time (they are rare): two removing one tree of files at once each stop at what the other
        // removed and can leave it half there; after the first, the others find no row.
        await _deletes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (await _store.GetAsync(id, cancellationToken).ConfigureAwait(false) is not { } record)
                return new Refusal(RefusalCode.NotFound, $"No task '{id}'.");
            if (!record.IsTerminal)
                return new Refusal(RefusalCode.TaskActive, $"Task {id} is {ApiJson.Name(record.Status)}.");
            // Files first: a crash in between leaves a row without files, which a second delete removes.
            DeleteFiles(id);
            return await _store.DeleteAsync(id, cancellationToken).ConfigureAwait(false) ? null : new Refusal(RefusalCode.NotFound, $"No task '{id}'.");
        }
        finally
        {
            _deletes.Release();
        }
    }

    /// <summary>Queues again a task that a previous process accepted and never started.</summary>
    public void Requeue(TaskPlan plan, TaskRecord record)
    {
        if (OpenRecoveredJournal(plan.Id) is not { } journal)
        {
            _ = Track(_store.SaveAsync(record with
            {
                Status = TaskState.Interrupted,
                EndedAt = _time.GetUtcNow(),
                Error = new TaskError(ErrorCodes.Interrupted, "The server stopped while the task was queued, and its journal cannot be written since, so it was not run again: create it again."),
            }, Durability.Machine));
            return;
        }

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
        if (OpenRecoveredJournal(final.Id) is not { } journal)
            return Track(_store.SaveAsync(final, Durability.Machine));
        var task = new ActiveTask(final.Id, null, final, journal);
        task.Inserted(true);
        lock (_gate)
            AddLocked(task);
        return Track(PublishAsync(task, final, heldSlot: false, journaled));
    }

    /// <summary>
    /// The journal of a task a previous process left, or <c>null</c> when it cannot be written (made immutable, its
    /// directory gone): the caller then records the task's end in the database alone, never leaving its row as it was.
    /// </summary>
    private JournalWriter? OpenRecoveredJournal(string id)
    {
        try
        {
            return _journals.Open(id);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogError(e, "Task {Id}: its journal cannot be opened; its end is recorded in the database alone", id);
            return null;
        }
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
    private string? MemoryReason(TaskPlan? plan) => MemoryGate.Check(plan?.Resources?.MemoryMaxBytes, _committedMemory, _memory.Current, _options.Limits);

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
    /// ends for its waiters when the first of those is durable, and leaves memory when the database has it. In a fleet,
    /// a final write refused because another node ended the task meanwhile gives way to the end that node recorded.
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

        if (heldSlot)
            _fleet?.Wake();
        var inJournal = journaled ? Task.CompletedTask : AppendEndAsync(task.Journal, final);
        // In a fleet the journal is in the database too, and a follower on another node takes a finished row for the end
        // of what it reads: the final events must be there first. (A journal file takes them at once; a full disk is
        // retried alongside the database's write.)
        if (_fleet is not null)
            await inJournal.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        var saved = _store.SaveAsync(final, Durability.Machine);
        // The end is durable once the database has it. If the database cannot take it in time (locked, full), the
        // journal, which holds the same final record, is made durable instead: the next start reconciles from it.
        await saved.WaitAsync(DatabaseGrace, _time).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        bool refusedEarly = IsFenced(saved);
        if (refusedEarly)
        {
            // Another node decided the end: this node's waiters and followers get that, not what it would have written.
            final = await StoredEndAsync(task, final).ConfigureAwait(false);
        }
        else if (!saved.IsCompletedSuccessfully)
        {
            try
            {
                await inJournal.ConfigureAwait(false);
                await Task.Run(task.Journal.Sync).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException)
            {
                if (e is not JournalFencedException)
                    _logger.LogError(e, "Task {Id}: its end is neither in the database nor durable in its journal yet", task.Id);
                await saved.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (IsFenced(saved))
                {
                    // The journal refused the end as the row did (another node ended the task): show that node's end.
                    refusedEarly = true;
                    final = await StoredEndAsync(task, final).ConfigureAwait(false);
                }
            }
        }

        task.MarkEnded(final);
        _observers.Ended(final);
        _logger.LogInformation("Task {Id} ended: {Status} {Code}", task.Id, final.Status, final.Error?.Code);
        try
        {
            await saved.ConfigureAwait(false);
            if (_fleet is not null)
                await _fleet.Store.NotifyAsync(Storage.Postgres.PostgresNotifications.End, task.Id).ConfigureAwait(false);
        }
        catch (StoreException e) when (e.Failure == StoreFailure.Fenced)
        {
            _logger.LogWarning("Task {Id}: this node lost its lease on it; another node recorded its end", task.Id);
            // Refused after the grace (the database was slow): this node's end is published already, but what it
            // answers for the task until it leaves memory is the recorded one.
            if (!refusedEarly)
                await StoredEndAsync(task, final).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id}: its final record is only in its journal; the next start writes it to the database", task.Id);
        }

        _fleet?.Store.Disown(task.Id);

        await inJournal.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        task.Journal.Dispose();
        lock (_gate)
            RemoveLocked(task);
        task.MarkStored();
    }

    private static bool IsFenced(Task saved) => saved.Exception?.InnerException is StoreException { Failure: StoreFailure.Fenced };

    /// <summary>
    /// The end another node recorded for a task whose final write this node had refused (fenced), made the task's
    /// record in memory; this node's own end when the row cannot be read, or has none.
    /// </summary>
    private async Task<TaskRecord> StoredEndAsync(ActiveTask task, TaskRecord own)
    {
        try
        {
            if (await _store.GetAsync(task.Id, CancellationToken.None).ConfigureAwait(false) is { IsTerminal: true } stored)
            {
                task.Record = stored;
                return task.Record;
            }
        }
        catch (StoreException e)
        {
            _logger.LogWarning("Task {Id}: could not read the end another node recorded ({Message}); this node's own is shown until the task leaves memory", task.Id, e.Message);
        }

        return own;
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
                await journal.CommitAsync().ConfigureAwait(false);
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

    /// <summary>Deletes a journal that was written for a task that was then refused (its rows, in a fleet; its files).</summary>
    private void DeleteJournal(string id)
    {
        try
        {
            _journals.Delete(id);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Npgsql.NpgsqlException)
        {
            _logger.LogWarning(e, "Task {Id}: could not delete the journal of a refused task", id);
        }
    }

    private void DeleteFiles(string id)
    {
        try
        {
            string dir = _paths.TaskDirectory(id);
            if (Directory.Exists(dir))
                Directory.Delete(dir, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
            // Deleted meanwhile by a concurrent delete of the same task.
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            _logger.LogWarning(e, "Task {Id}: could not delete its files", id);
        }
    }
}
