using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Recovery;

/// <summary>
/// At start-up, before the server takes requests, settles what a previous process left unfinished:
/// <list type="bullet">
/// <item>a task whose journal holds its end (the database could not be written in time) gets that final record;</item>
/// <item>a task that was running is interrupted, and what is left of its process tree is killed;</item>
/// <item>a task that never started is queued again (running it now is as safe as it was then).</item>
/// </list>
/// Directories of tasks that have no row (a delete that stopped half-way) are removed.
/// </summary>
internal sealed class Recovery(ITaskStore store, Scheduler scheduler, Admission.Admission admission, IJournalStore journals, ServerPaths paths,
    IOptions<CorralOptions> options, TimeProvider time, ILogger<Recovery> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var left in await store.ListUnfinishedAsync(cancellationToken).ConfigureAwait(false))
        {
            try
            {
                await SettleAsync(left).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
            {
                logger.LogError(e, "Task {Id}: could not settle what the previous server process left", left.Record.Id);
            }
        }

        await RemoveOrphansAsync(cancellationToken).ConfigureAwait(false);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private async Task SettleAsync(UnfinishedTask left)
    {
        var record = left.Record;
        var journal = JournalFacts.Of(journals.Read(record.Id));
        var treeIdentity = left.Tree ?? journal.Tree;
        if (journal.Final is { } ended)
        {
            logger.LogWarning("Task {Id}: its end was in its journal but not in the database; recorded {Status}", record.Id, ended.Status);
            _ = scheduler.FinishRecoveredAsync(ended, journaled: true); // held in memory until the database takes it
            return;
        }

        if (record.Status == TaskState.Queued && journal.Start is null && treeIdentity is null)
        {
            var body = Interruption.RequestOf(left.RequestJson);
            var now = time.GetUtcNow();
            var (plan, refusal) = body is null ? (null, new Refusal(RefusalCode.InvalidRequest, "The stored request cannot be read.")) : admission.Plan(body, record.Id);
            if (body?.Secrets is { Count: > 0 } || Interruption.HeldSecrets(left.RequestJson, plan?.Mask))
            {
                // Its secrets (its own, or values of the operator's that were in its arguments or environment) lived
                // in the memory of the process that accepted it, nowhere else: it cannot run as asked.
                _ = scheduler.FinishRecoveredAsync(record with
                {
                    Status = TaskState.Interrupted,
                    EndedAt = now,
                    Error = new TaskError(ErrorCodes.Interrupted, "The server stopped while the task was queued; its request held secrets, which are never stored, so it was not queued again: create it again."),
                }, journaled: false);
                return;
            }

            if (plan is not null)
            {
                scheduler.Requeue(plan with { RequestJson = left.RequestJson }, record);
                logger.LogInformation("Task {Id} was queued when the server stopped: queued again", record.Id);
                return;
            }

            _ = scheduler.FinishRecoveredAsync(record with
            {
                Status = TaskState.Failed,
                EndedAt = now,
                Error = new TaskError(ErrorCodes.SpawnFailed, "Queued before a restart, and refused after it: " + refusal!.Message),
            }, journaled: false);
            return;
        }

        IReadOnlyList<KilledProcess> killed = [];
        if (treeIdentity is { } tree)
        {
            try
            {
                killed = await ProcessTree.KillLeftoversAsync(tree.TreeId, tree.CgroupPath, exclusiveUid: tree.Uid).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                logger.LogError(e, "Task {Id}: could not kill what is left of tree {Tree}", record.Id, tree.TreeId);
            }
        }

        // What reached the journal is what was stored; what the cap dropped, as last noted (at most a second old).
        var final = Interruption.Of(record, journal, treeIdentity, Interruption.MaxOutputBytes(left.RequestJson, options.Value.MaxOutputBytes), time.GetUtcNow(), killed,
            $"The server stopped while the task was running; {killed.Count} leftover process(es) of its tree were killed at start-up.");
        logger.LogWarning("Task {Id} was running when the server stopped: marked interrupted, {Count} leftover process(es) killed", record.Id, killed.Count);
        _ = scheduler.FinishRecoveredAsync(final, journaled: false);
    }

    /// <summary>Removes the directories of tasks that have no record (a delete that stopped half-way, or one made through another node).</summary>
    public async Task RemoveOrphansAsync(CancellationToken cancellationToken)
    {
        if (!Directory.Exists(paths.Tasks))
            return;
        foreach (string dir in Directory.EnumerateDirectories(paths.Tasks))
        {
            string id = Path.GetFileName(dir);
            if (scheduler.Find(id) is not null || await store.GetAsync(id, cancellationToken).ConfigureAwait(false) is not null)
                continue;
            try
            {
                Directory.Delete(dir, recursive: true);
                logger.LogInformation("Removed the files of task {Id}, which has no record (a delete that stopped half-way)", id);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning(e, "Could not remove {Dir}", dir);
            }
        }
    }
}
