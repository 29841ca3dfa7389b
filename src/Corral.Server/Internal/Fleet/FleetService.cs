using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Corral.Server.Internal.Storage.Postgres;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Corral.Server.Internal.Fleet;

/// <summary>
/// What a node of a fleet does besides answering requests:
/// <list type="bullet">
/// <item>claims the oldest queued task it may run whenever it has a free slot (woken by <c>NOTIFY</c>, with a slow poll as a safety net);</item>
/// <item>renews its lease on its running tasks every sixth of the lease (quickly again after a failure), and kills their trees itself when it cannot
/// (self-fencing: before the lease runs out, so nothing of a task outlives the moment another node declares its end);</item>
/// <item>ends, as interrupted, the tasks of nodes that stopped renewing (no automatic retry: agent runs are not idempotent);</item>
/// <item>hears cancels asked on other nodes, and kills what is left of its own trees that other nodes ended while it was gone.</item>
/// </list>
/// Started before recovery (the schema must exist and the node be known), stopped after the scheduler (the running
/// tasks' leases are renewed while they stop).
/// </summary>
internal sealed class FleetService(FleetNode fleet, Scheduler scheduler, FleetProcesses processes, Admission.Admission admission, Recovery.Recovery recovery,
    TimeProvider time, ILogger<FleetService> logger) : IHostedService
{
    /// <summary>The claim loop looks for work this often even when no notification came.</summary>
    private static readonly TimeSpan ClaimPoll = TimeSpan.FromSeconds(2);

    /// <summary>How often directories of tasks deleted by other nodes are looked for.</summary>
    private static readonly TimeSpan SweepInterval = TimeSpan.FromMinutes(10);

    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _claimSignal = new(0, 1);
    private readonly List<Task> _loops = [];
    private long _lastRenewed;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await ConnectAsync(cancellationToken).ConfigureAwait(false);
        fleet.ClaimSoon += SignalClaim;
        fleet.Notifications.Queued += SignalClaim;
        fleet.Notifications.CancelRequested += id => scheduler.Find(id)?.RequestStop(StopReason.Cancel);
        processes.AnswerFrom(scheduler.LocalProcesses);
        var token = _stopping.Token;
        _loops.Add(Task.Run(() => ClaimLoopAsync(token), CancellationToken.None));
        _loops.Add(Task.Run(() => LeaseLoopAsync(token), CancellationToken.None));
        _loops.Add(Task.Run(() => ReapLoopAsync(token), CancellationToken.None));
        _loops.Add(Task.Run(() => SweepLoopAsync(token), CancellationToken.None));
        logger.LogInformation("Node {Node} joined the fleet (lease {Lease} s)", fleet.Node, fleet.Lease.TotalSeconds);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // The scheduler has stopped its tasks by now. Tasks queued with secrets only this node held can run nowhere else.
        foreach (string id in fleet.Held)
        {
            try
            {
                if (await fleet.Store.EndQueuedAsync(id, r => FleetNode.SecretsLost(r, time.GetUtcNow()), flagIfRunning: false, cancellationToken).ConfigureAwait(false) is { } ended)
                    await scheduler.RecordEndedElsewhereAsync(ended.Record, ended.Epoch).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or StoreException or OperationCanceledException or TimeoutException)
            {
                logger.LogWarning(e, "Task {Id}: could not end it; the fleet ends it once this node's lease runs out", id);
            }
        }

        await _stopping.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_loops).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        try
        {
            using var quick = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            quick.CancelAfter(TimeSpan.FromSeconds(5));
            await fleet.Store.LeaveAsync(quick.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or TimeoutException)
        {
            logger.LogWarning("Could not tell the fleet this node left ({Message}); its entry expires with its lease", e.Message);
        }
    }

    /// <summary>Creates or migrates the schema and registers this node, waiting a while for a database that is still starting.</summary>
    private async Task ConnectAsync(CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(60));
        var delay = TimeSpan.FromMilliseconds(100);
        while (true)
        {
            try
            {
                await PostgresSchema.MigrateAsync(fleet.Store.DataSource, deadline.Token).ConfigureAwait(false);
                await fleet.Store.RenewAsync(fleet.Lease, inherited: true, deadline.Token).ConfigureAwait(false);
                _lastRenewed = time.GetTimestamp();
                return;
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or IOException && !deadline.IsCancellationRequested)
            {
                if (e is PostgresException { IsTransient: false } fatal)
                    throw new Hosting.ServerConfigurationException($"the task database refused this node: {fatal.MessageText}");
                logger.LogWarning("The task database cannot be reached yet ({Message}); retrying", e.Message);
                await Task.Delay(delay, time, deadline.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 2000));
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new Hosting.ServerConfigurationException("the task database (Corral:Postgres:ConnectionString) could not be reached within 60 s.");
            }
        }
    }

    private void SignalClaim()
    {
        try
        {
            if (_claimSignal.CurrentCount == 0)
                _claimSignal.Release();
        }
        catch (SemaphoreFullException)
        {
        }
    }

    private async Task ClaimLoopAsync(CancellationToken cancellationToken)
    {
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                while (await ClaimOneAsync(cancellationToken).ConfigureAwait(false))
                {
                }

                await _claimSignal.WaitAsync(ClaimPoll, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or StoreException or TimeoutException or OperationCanceledException or IOException)
            {
                logger.LogWarning("Could not claim a task ({Message}); trying again", e.Message);
                await Task.Delay(ClaimPoll, time, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>Claims and starts one task if this node has room for one; whether it did.</summary>
    private async Task<bool> ClaimOneAsync(CancellationToken cancellationToken)
    {
        if (scheduler.ReserveSlot() is not { } room)
            return false;
        ClaimedTask? claimed;
        try
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            attempt.CancelAfter(fleet.Lease / 3);
            claimed = await fleet.Store.ClaimAsync(room, fleet.Lease, attempt.Token).ConfigureAwait(false);
        }
        catch
        {
            scheduler.ReleaseSlot();
            throw;
        }

        if (claimed is null)
        {
            scheduler.ReleaseSlot();
            return false;
        }

        var record = claimed.Record;
        var (plan, final) = Plan(claimed);
        logger.LogInformation("Task {Id} claimed by node {Node}", record.Id, fleet.Node);
        scheduler.StartClaimed(plan, record, final);
        return true;
    }

    /// <summary>The plan of a claimed task: the one held in memory (with its secrets), or one made again from the stored request; else its final record.</summary>
    private (TaskPlan? Plan, TaskRecord? Final) Plan(ClaimedTask claimed)
    {
        var record = claimed.Record;
        if (fleet.Take(record.Id) is { } held)
            return (held, null);
        CreateTaskRequest? body;
        try
        {
            body = JsonSerializer.Deserialize<CreateTaskRequest>(claimed.RequestJson, ApiJson.Options);
        }
        catch (JsonException)
        {
            body = null;
        }

        var now = time.GetUtcNow();
        if (body?.Secrets is { Count: > 0 })
            return (null, FleetNode.SecretsLost(record, now));
        var (plan, refusal) = body is null ? (null, new Refusal(RefusalCode.InvalidRequest, "The stored request is unreadable.")) : admission.Plan(body, record.Id);
        if (plan is not null)
            return (plan with { RequestJson = claimed.RequestJson }, null);
        return (null, record with
        {
            Status = TaskState.Failed,
            EndedAt = now,
            Error = new TaskError(ErrorCodes.SpawnFailed, $"Node {fleet.Node} claimed the task and could not run it: {refusal!.Message}"),
        });
    }

    /// <summary>
    /// Renews the leases at the pace <see cref="LeasePace"/> sets. A task this node runs that the renewal no longer
    /// returns was taken from it (ended by another node): it is fenced. When no renewal has succeeded for two thirds of
    /// the lease, every running tree is killed, so that none outlives the lease; the tasks stay this node's to record.
    /// </summary>
    private async Task LeaseLoopAsync(CancellationToken cancellationToken)
    {
        var pace = new LeasePace(fleet.Lease);
        bool failing = false;
        bool fencedAll = false;
        long lastWarned = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(failing ? pace.Retry : pace.Renew, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            long sent = time.GetTimestamp();
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                var timeout = pace.AttemptTimeout(time.GetElapsedTime(_lastRenewed));
                attempt.CancelAfter(timeout);
                // Bounded here too, a little later (so the driver has been told to cancel before its token's source is
                // disposed): its cancellation may take a while to be honoured, and the fence must not wait for it.
                var held = await fleet.Store.RenewAsync(fleet.Lease, inherited: false, attempt.Token)
                    .WaitAsync(timeout + pace.Retry, time, cancellationToken).ConfigureAwait(false);
                _lastRenewed = sent;
                fleet.Reachable = true;
                if (failing)
                    logger.LogWarning("Node {Node} renewed its lease again", fleet.Node);
                failing = false;
                fencedAll = false;
                lastWarned = 0;
                Reconcile(held, sent);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException or OperationCanceledException or IOException && !cancellationToken.IsCancellationRequested)
            {
                var silent = time.GetElapsedTime(_lastRenewed);
                fleet.Reachable = false;
                failing = true;
                // Retries come every few hundred milliseconds: one warning per third of the lease is enough.
                if (lastWarned == 0 || time.GetElapsedTime(lastWarned) >= fleet.Lease / 3)
                {
                    lastWarned = time.GetTimestamp();
                    logger.LogWarning("Node {Node} could not renew its lease ({Message}); last renewed {Seconds:0.#} s ago", fleet.Node, e.Message, silent.TotalSeconds);
                }

                // A task claimed since the last renewal holds a lease as fresh as its claim.
                if (pace.Fences(silent) && scheduler.Running().Where(t => pace.Fences(time.GetElapsedTime(Math.Max(_lastRenewed, t.ClaimedAt)))).ToList() is { Count: > 0 } running)
                {
                    if (!fencedAll)
                        logger.LogError("Node {Node} fences itself: killing the trees of {Count} task(s) before its lease runs out", fleet.Node, running.Count);
                    // Only the trees: the tasks stay this node's (their epochs kept), so that their interrupted ends
                    // are written once the database is back, unless another node has ended them by then.
                    foreach (var task in running)
                        task.Fence();
                    fencedAll = true;
                }
            }
        }
    }

    /// <summary>What the renewal found against what runs here: tasks taken from this node are fenced, cancels asked for are passed on.</summary>
    private void Reconcile(IReadOnlyList<HeldTask> held, long renewalSent)
    {
        var byId = held.ToDictionary(h => h.Id, StringComparer.Ordinal);
        foreach (var task in scheduler.Running())
        {
            if (byId.TryGetValue(task.Id, out var h) && h.Epoch == fleet.Store.EpochOf(task.Id))
            {
                if (h.CancelRequested)
                    task.RequestStop(StopReason.Cancel); // the notification may have been lost
            }
            else if (task.ClaimedAt != 0 && task.ClaimedAt < renewalSent)
            {
                logger.LogError("Task {Id}: another node ended it while this node ran it (this node's lease had run out); killing its tree", task.Id);
                fleet.Store.Fence(task.Id);
                task.Fence();
            }
        }
    }

    /// <summary>
    /// The final record of a task whose node stopped renewing: the end it produced when that reached the journal (the
    /// node died before the row had it), else interrupted. Only the journal's last commit is read (this runs in the
    /// reaping transaction). A journal that cannot be read fails the reap, to be tried again.
    /// </summary>
    private TaskRecord EndOf(TaskRecord record, string requestJson, HashSet<string> journaled)
    {
        if (record.Status == TaskState.Running && JournalFacts.Of(fleet.Journals.ReadLastCommit(record.Id)).Final is { } final)
        {
            journaled.Add(record.Id);
            return final;
        }

        return fleet.Interrupted(record, requestJson, time.GetUtcNow());
    }

    /// <summary>Ends the tasks of nodes that stopped renewing, every third of the lease (staggered by node).</summary>
    private async Task ReapLoopAsync(CancellationToken cancellationToken)
    {
        var interval = fleet.Lease / 3;
        // Nodes look at different moments, so that one of them finds an expired lease soon after it expires.
        var offset = TimeSpan.FromMilliseconds(Math.Abs(fleet.Node.GetHashCode()) % Math.Max(1, (int)interval.TotalMilliseconds));
        try
        {
            await Task.Delay(offset, time, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        while (!cancellationToken.IsCancellationRequested)
        {
            try
            {
                var journaled = new HashSet<string>(StringComparer.Ordinal);
                foreach (var ended in await fleet.Store.ReapAsync((r, request) => EndOf(r, request, journaled), 50, cancellationToken).ConfigureAwait(false))
                {
                    bool fromJournal = journaled.Contains(ended.Record.Id);
                    logger.LogWarning("Task {Id}: node {Node} stopped renewing its lease{After}; recorded {Status}", ended.Record.Id, ended.Node ?? "(none)",
                        fromJournal ? " after its end reached the journal" : "", ended.Record.Status);
                    await scheduler.RecordEndedElsewhereAsync(ended.Record, ended.Epoch, journaled: fromJournal).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or StoreException or TimeoutException or IOException or InvalidDataException or JsonException)
            {
                logger.LogWarning("Could not look for expired leases ({Message})", e.Message);
            }

            try
            {
                await Task.Delay(interval, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>
    /// Kills what is left on this node of trees whose tasks another node ended while this one was gone (at start, and
    /// again every third of the lease until none is left), and removes directories of tasks deleted through other nodes
    /// (every few minutes). A failure is logged and tried again; it never ends the loop.
    /// </summary>
    private async Task SweepLoopAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (!await KillLeftoversAsync(cancellationToken).ConfigureAwait(false))
                await Task.Delay(fleet.Lease / 3, time, cancellationToken).ConfigureAwait(false);

            while (!cancellationToken.IsCancellationRequested)
            {
                await Task.Delay(SweepInterval, time, cancellationToken).ConfigureAwait(false);
                try
                {
                    await recovery.RemoveOrphansAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is NpgsqlException or StoreException or TimeoutException or IOException or UnauthorizedAccessException)
                {
                    logger.LogWarning(e, "Could not remove the directories of deleted tasks; trying again in {Minutes} min", SweepInterval.TotalMinutes);
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>Kills the leftovers of the trees of this node's tasks that another node ended; whether every one was dealt with.</summary>
    private async Task<bool> KillLeftoversAsync(CancellationToken cancellationToken)
    {
        IReadOnlyList<(TaskRecord Record, TreeIdentity? Tree)> leftovers;
        try
        {
            leftovers = await fleet.Store.LeftoversAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is NpgsqlException or StoreException or TimeoutException)
        {
            logger.LogWarning("Could not look for the leftovers of this node's tasks ({Message}); trying again", e.Message);
            return false;
        }

        bool all = true;
        foreach (var (record, stored) in leftovers)
        {
            try
            {
                if ((stored ?? TreeInJournal(record.Id)) is { } tree)
                {
                    var killed = await ProcessTree.KillLeftoversAsync(tree.TreeId, tree.CgroupPath, exclusiveUid: tree.Uid).ConfigureAwait(false);
                    if (killed.Count > 0)
                        logger.LogWarning("Task {Id}: killed {Count} leftover process(es) of its tree, which another node had ended", record.Id, killed.Count);
                }

                await fleet.Store.ClearedAsync(record.Id).ConfigureAwait(false);
            }
            catch (Exception e) when (e is NpgsqlException or StoreException or TimeoutException or IOException or UnauthorizedAccessException)
            {
                logger.LogWarning("Task {Id}: could not kill what is left of its tree yet ({Message}); trying again", record.Id, e.Message);
                all = false;
            }
        }

        return all;
    }

    /// <summary>The tree a task's journal notes; <c>null</c> when it has none, or cannot be read (that will not change by trying again).</summary>
    private TreeIdentity? TreeInJournal(string id)
    {
        try
        {
            return JournalFacts.Of(fleet.Journals.Read(id), headOnly: true).Tree;
        }
        catch (InvalidDataException e)
        {
            logger.LogWarning("Task {Id}: its journal cannot be read ({Message}); what is left of its tree, if anything, is not known", id, e.Message);
            return null;
        }
    }
}
