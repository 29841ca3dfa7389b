using Corral.Server.Api;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Scheduling;

/// <summary>
/// A task the server holds in memory: queued, running, or ended with its final record not yet in the database. Its
/// record here is at least as new as the stored one, so reads consult it first.
/// </summary>
internal sealed class ActiveTask
{
    private readonly TaskCompletionSource<bool> _inserted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<TaskRecord> _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<StopReason> _stop = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _stored = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private volatile TaskRecord _record;

    public ActiveTask(string id, TaskPlan? plan, TaskRecord record, JournalWriter journal)
    {
        Id = id;
        Plan = plan;
        Journal = journal;
        journal.Mask = plan?.Mask;
        _record = Masked(record);
    }

    public ActiveTask(TaskPlan plan, TaskRecord record, JournalWriter journal) : this(plan.Id, plan, record, journal) { }

    public string Id { get; }

    /// <summary>What the task runs; <c>null</c> for a task recovered only to record its end.</summary>
    public TaskPlan? Plan { get; }

    public string? SessionKey => Plan?.SessionKey;

    public string? IdempotencyKey => Plan?.IdempotencyKey;

    public JournalWriter Journal { get; }

    /// <summary>When this node claimed the task from a fleet's queue (a <see cref="TimeProvider"/> timestamp); 0 otherwise.</summary>
    public long ClaimedAt { get; init; }

    /// <summary>The running process tree (for the live process ledger); <c>null</c> before it starts and after it ends.</summary>
    public Corral.Processes.ProcessTree? Tree { get; set; }

    /// <summary>The newest record; secret values are masked in it as it is set, before anyone can read or store it.</summary>
    public TaskRecord Record
    {
        get => _record;
        set => _record = Masked(value);
    }

    private TaskRecord Masked(TaskRecord record) => Plan?.Mask is { } mask
        ? System.Text.Json.JsonSerializer.Deserialize<TaskRecord>(mask.Apply(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(record, ApiJson.Options)), ApiJson.Options)!
        : record;

    /// <summary>Completes with the final record once it is durable (in the journal or the database).</summary>
    public Task<TaskRecord> Ended => _ended.Task;

    /// <summary>Completes when the server lets go of a task that has not ended (it stops while the task is queued).</summary>
    public Task Released => _released.Task;

    /// <summary>Completes with the first reason anyone asked the task to stop.</summary>
    public Task<StopReason> StopRequested => _stop.Task;

    public StopReason? StopReason => _stop.Task.IsCompletedSuccessfully ? _stop.Task.Result : null;

    /// <summary>Cancelled once anyone asked the task to stop: for what it waits on before its tree exists.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Asks the task to stop; the first reason wins. Idempotent.</summary>
    public void RequestStop(StopReason reason)
    {
        if (_stop.TrySetResult(reason))
            _stopping.Cancel();
    }

    /// <summary>
    /// This node lost its lease on the task: its tree is killed at once (no ladder: another node may declare the task's
    /// end any moment, and nothing of it may outlive that).
    /// </summary>
    public void Fence()
    {
        RequestStop(Running.StopReason.Fenced);
        Tree?.Cancel(Corral.Processes.StopSignal.Kill);
    }

    /// <summary>Whether its row is in the database (false while the insert is pending, or when it was refused).</summary>
    public bool IsInserted => _inserted.Task.IsCompletedSuccessfully && _inserted.Task.Result;

    /// <summary>Its row is durable (<c>true</c>), or the task was refused (<c>false</c>).</summary>
    public void Inserted(bool durable) => _inserted.TrySetResult(durable);

    /// <summary>Waits for <see cref="Inserted"/>: whether the task exists.</summary>
    public Task<bool> WaitInsertedAsync(CancellationToken cancellationToken) => _inserted.Task.WaitAsync(cancellationToken);

    public void MarkEnded(TaskRecord final) => _ended.TrySetResult(final);

    /// <summary>Completes when the task has left memory: its final record is in the database.</summary>
    public Task Stored => _stored.Task;

    public void MarkStored() => _stored.TrySetResult();

    public void Release() => _released.TrySetResult();
}
