using System.Text.Json;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

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
    TimeProvider time, ILogger<Recovery> logger) : IHostedService
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
        var (ended, started, journaledTree) = ReadJournal(journals.Read(record.Id));
        var treeIdentity = left.Tree ?? journaledTree;
        if (ended is not null)
        {
            logger.LogWarning("Task {Id}: its end was in its journal but not in the database; recorded {Status}", record.Id, ended.Status);
            _ = scheduler.FinishRecoveredAsync(ended, journaled: true); // held in memory until the database takes it
            return;
        }

        if (record.Status == TaskState.Queued && !started && treeIdentity is null)
        {
            var body = JsonSerializer.Deserialize<CreateTaskRequest>(left.RequestJson, ApiJson.Options);
            var now = time.GetUtcNow();
            if (body?.Secrets is { Count: > 0 })
            {
                // Its secrets lived in the memory of the process that accepted it, nowhere else: it cannot run as asked.
                _ = scheduler.FinishRecoveredAsync(record with
                {
                    Status = TaskState.Interrupted,
                    EndedAt = now,
                    Error = new TaskError(ErrorCodes.Interrupted, "The server stopped while the task was queued; its secrets are never stored, so it was not queued again: create it again."),
                }, journaled: false);
                return;
            }

            var (plan, refusal) = body is null ? (null, new Refusal(RefusalCode.InvalidRequest, "The stored request is empty.")) : admission.Plan(body, record.Id);
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

        var at = time.GetUtcNow();
        var final = record with
        {
            Status = TaskState.Interrupted,
            EndedAt = at,
            Error = new TaskError(ErrorCodes.Interrupted,
                $"The server stopped while the task was running; {killed.Count} leftover process(es) of its tree were killed at start-up."),
            Process = (record.Process ?? Placeholder(record, treeIdentity, at)) with { Killed = killed },
        };
        logger.LogWarning("Task {Id} was running when the server stopped: marked interrupted, {Count} leftover process(es) killed", record.Id, killed.Count);
        _ = scheduler.FinishRecoveredAsync(final, journaled: false);
    }

    /// <summary>What a task's journal says: its final record if it holds its end, whether the run started, its tree.</summary>
    private static (TaskRecord? Final, bool Started, TreeIdentity? Tree) ReadJournal(JournalReader journal)
    {
        using var reader = journal;
        long limit = reader.FileLength;
        JournalEntry? result = null;
        bool ended = false, started = false;
        TreeIdentity? tree = null;
        while (reader.TryRead(limit, out var e))
        {
            if (e.IsLine)
                continue;
            if (e.Name == "task.result")
                result = e;
            else if (e.IsMeta && e.Name == JournalNotes.Started)
                started = true;
            else if (e.IsMeta && e.Name == JournalNotes.Tree)
                tree = JsonSerializer.Deserialize<TreeIdentity>(reader.ReadAll(e), ApiJson.Options);
            ended = e.Name == "task.end";
        }

        var final = ended && result is { } r ? JsonSerializer.Deserialize<TaskRecord>(reader.ReadAll(r), ApiJson.Options) : null;
        return (final, started, tree);
    }

    /// <summary>What is known of a tree whose task never recorded an outcome: its child, its id.</summary>
    private static ProcessOutcome Placeholder(TaskRecord record, TreeIdentity? tree, DateTimeOffset at) => new()
    {
        Pid = tree?.Pid ?? 0,
        TreeId = tree?.TreeId ?? "",
        Reason = ExitReason.Canceled,
        StartedAt = record.StartedAt ?? at,
        ExitedAt = at,
        CompletedAt = at,
        Containment = tree?.CgroupPath is null ? ContainmentKind.Session : ContainmentKind.Cgroup,
    };

    private async Task RemoveOrphansAsync(CancellationToken cancellationToken)
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
