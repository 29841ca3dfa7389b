using Corral.Agents;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Isolation;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Running;

/// <summary>
/// Runs one task's agent to the end and says what happened: prepares it, starts its process tree, feeds its input,
/// takes its output into the journal, enforces its deadlines, and stops it through the ladder when asked (agent
/// interrupt first, then close stdin, SIGTERM, SIGKILL). It decides nothing about the task's final status.
/// </summary>
internal sealed class TaskRunner(ITaskStore store, StorageGuard storage, ServerPaths paths, Isolation.TaskUsers users, Isolation.TaskWorkspace workspace,
    TaskObservers observers, IOptions<CorralOptions> options, TimeProvider time, ILogger<TaskRunner> logger)
{
    /// <summary>Unread output the process core may hold per stream before the child waits for us (the ingest is fast).</summary>
    private const long BufferedBytes = 1 << 20;

    /// <summary>How long a task runs before the database is told (see <see cref="RecordRunningAsync"/>).</summary>
    private static readonly TimeSpan RunningRecordDelay = TimeSpan.FromMilliseconds(250);

    private readonly CorralOptions _options = options.Value;

    public async Task<RunResult> RunAsync(ActiveTask task)
    {
        ProcessUser? user;
        try
        {
            user = workspace.RunAs(task.Plan!, await users.AllocateAsync(task.Stopping).ConfigureAwait(false));
        }
        catch (OperationCanceledException) when (task.StopReason is { } early)
        {
            return new RunResult(null, null, early, null, null);
        }
        catch (NoFreeUidException e)
        {
            return Failed(ErrorCodes.SpawnFailed, e.Message);
        }

        bool clean = true, spoiled = false;
        try
        {
            var result = await RunAsAsync(task, user).ConfigureAwait(false);
            clean = result.Process is not { HolderSurvived: true };
            spoiled = result.Failure is { UidSpoiled: true };
            return result;
        }
        catch
        {
            clean = false;
            throw;
        }
        finally
        {
            try
            {
                workspace.Close(task.Plan!, user);
            }
            finally
            {
                users.Release(user, clean, workspace.PrivateDirectories(task.Plan!, user), spoiled);
            }
        }
    }

    private async Task<RunResult> RunAsAsync(ActiveTask task, ProcessUser? user)
    {
        var plan = task.Plan!;
        IAgentRun run;
        AgentRequest request;
        try
        {
            request = workspace.Prepare(plan, user);
            // A link planted in the workspace root since admission must not take the task out of it.
            if (plan.CreateWorkdir && !request.WorkingDirectory.StartsWith(task.Journal.Directory, StringComparison.Ordinal)
                && !Admission.Workdirs.StaysInside(request.WorkingDirectory, paths.WorkspaceRoot))
                return Failed(ErrorCodes.SpawnFailed, "The working directory leaves the workspace root through a symbolic link.");
            run = plan.Adapter.Prepare(request);
            workspace.Adopt(request, user);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (Files.IsOutOfSpace(e))
                storage.ReportFull();
            return Failed(Files.IsOutOfSpace(e) ? ErrorCodes.StorageFull : ErrorCodes.SpawnFailed, "Could not prepare the task: " + e.Message);
        }

        if (task.StopReason is { } early)
            return new RunResult(null, null, early, null, null);

        var started = time.GetUtcNow();
        task.Record = task.Record with { Status = TaskState.Running, StartedAt = started, QueueReason = null, Uid = user?.Uid };
        observers.Started(task.Record);
        var ingest = new OutputIngest(task.Journal, run, plan.MaxOutputBytes, plan.Mask, time);
        task.Journal.AddEvent("task.status", new { status = TaskState.Running, at = started });
        // In the journal before anything runs: a restart must never run again a task that may have started.
        task.Journal.AddMeta(JournalNotes.Started, new StartNote(started, [run.Spec.FileName, .. run.Spec.Arguments]));
        await ingest.CommitAsync().ConfigureAwait(false);

        var spec = run.Spec with
        {
            // The environment is the one admission built (the request's holds all of it): nothing of the server's.
            InheritEnvironment = false,
            User = user,
            PrivateDirectories = workspace.PrivateDirectories(plan, user),
            PrivateIpc = user is { Exclusive: true } && users.PrivateIpc,
            OwnProcessesOnly = user is { Exclusive: true } && users.OwnProcessesOnly,
            ResourceLimits = plan.Resources,
            Containment = _options.Containment,
            Teardown = new TeardownOptions
            {
                // Closing stdin asks an agent that reads it to finish; one whose stdin closed after its input gets the signal at once.
                CloseInputGrace = run.KeepInputOpen ? TimeSpan.FromSeconds(_options.CloseInputGraceSeconds) : TimeSpan.Zero,
                Grace = TimeSpan.FromSeconds(_options.TerminateGraceSeconds),
            },
            Limits = run.Spec.Limits with { MaxBufferedBytes = BufferedBytes, Overflow = OverflowPolicy.Wait },
        };

        ProcessTree tree;
        try
        {
            tree = ProcessTree.Start(spec);
        }
        catch (ProcessSpawnException e)
        {
            var failure = new RunFailure(ErrorCodes.SpawnFailed, e.Message, UidSpoiled: e.Failure == SpawnFailure.UserUnavailable && user is { Exclusive: true });
            return new RunResult(null, null, null, failure, Output(ingest, plan, null));
        }

        await using (tree.ConfigureAwait(false))
        {
            var identity = new TreeIdentity(tree.TreeId, tree.CgroupPath, tree.Pid, user is { Exclusive: true } ? user.Uid : null);
            task.Tree = tree;
            task.Journal.AddMeta(JournalNotes.Tree, identity);
            await ingest.CommitAsync().ConfigureAwait(false);
            _ = RecordRunningAsync(task, identity, tree.Completion);
            var process = new AgentProcess(tree, run, _options, time, logger, task.Id);
            _ = task.StopRequested.ContinueWith(_ => process.StopAsync(), TaskScheduler.Default).Unwrap();
            if (task.StopReason == StopReason.Fenced)
                tree.Cancel(StopSignal.Kill); // fenced while it started: the ladder would outlast the lease
            var watchdog = WatchAsync(task, process, tree, plan);
            try
            {
                await foreach (var chunk in tree.ReadChunksAsync().ConfigureAwait(false))
                {
                    process.SawOutput();
                    ingest.Write(chunk.Stream, chunk.Bytes.Span);
                    await ingest.CommitAsync().ConfigureAwait(false);
                    if (ingest.StorageFailure is not null && task.StopReason is null)
                    {
                        storage.ReportFull();
                        task.RequestStop(StopReason.StorageFull);
                    }

                    if (ingest.Fenced)
                        task.Fence();

                    if (run.HasResult)
                        process.ResultSeen(task.StopReason is not null);
                }

                ingest.Complete();
                await ingest.CommitAsync().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                logger.LogError(e, "Task {Id}: reading its output failed; stopping its tree", task.Id);
                tree.Cancel();
                var crashed = await tree.Completion.ConfigureAwait(false);
                return Failed(ErrorCodes.Internal, "Internal error while reading the output: " + e.Message) with { Process = crashed, Output = Output(ingest, plan, null) };
            }

            var outcome = await tree.Completion.ConfigureAwait(false);
            task.Tree = null;
            await watchdog.ConfigureAwait(false);
            var agent = run.Complete(outcome, ingest.StdoutTail);
            try
            {
                workspace.Finish(plan, user, agent.SessionId);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                logger.LogWarning(e, "Task {Id}: could not keep its session's state for a later resume", task.Id);
            }
            outcome = outcome with
            {
                StandardOutputTruncated = outcome.StandardOutputTruncated || ingest.DroppedBytes(OutputStream.StandardOutput) > 0,
                StandardErrorTruncated = outcome.StandardErrorTruncated || ingest.DroppedBytes(OutputStream.StandardError) > 0,
            };
            // A command's result is its exit: one that came after a stop came after it.
            return new RunResult(agent, outcome, task.StopReason, null, Output(ingest, plan, agent), process.ResultBeforeStop || task.StopReason is null);
        }
    }

    /// <summary>
    /// Tells the database the task runs, and its tree, once it has run for a moment: the journal knows both already
    /// (recovery reads them there), and most short tasks end first, when their final record says it all in one write.
    /// </summary>
    private async Task RecordRunningAsync(ActiveTask task, TreeIdentity identity, Task completion)
    {
        // WaitAsync drops its timer as soon as the tree completes (most short tasks), where a Delay would run on.
        await completion.WaitAsync(RunningRecordDelay, time).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        if (completion.IsCompleted)
            return;
        Save(store.SaveAsync(task.Record, Durability.Server), task.Id);
        Save(store.SaveTreeAsync(task.Id, identity), task.Id);
    }

    /// <summary>The whole-task timeout and the stall timeout, on the injected clock.</summary>
    private async Task WatchAsync(ActiveTask task, AgentProcess process, ProcessTree tree, Admission.TaskPlan plan)
    {
        if (plan.Timeout is null && plan.StallTimeout is null)
            return;
        long start = time.GetTimestamp();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200), time);
        while (!tree.Completion.IsCompleted && !process.HasResult && task.StopReason is null)
        {
            await Task.WhenAny(timer.WaitForNextTickAsync().AsTask(), tree.Completion).ConfigureAwait(false);
            if (Deadlines.Passed(time.GetElapsedTime(start), time.GetElapsedTime(process.LastOutput), plan.Timeout, plan.StallTimeout) is { } reason)
                task.RequestStop(reason);
        }
    }

    private void Save(Task write, string id) =>
        _ = write.ContinueWith(t => logger.LogError(t.Exception, "Task {Id}: a record write was abandoned", id),
            CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);

    private static TaskOutput Output(OutputIngest ingest, Admission.TaskPlan plan, AgentOutcome? agent) =>
        new(ingest.StoredBytes, ingest.DroppedBytes(OutputStream.StandardOutput) + ingest.DroppedBytes(OutputStream.StandardError),
            plan.MaxOutputBytes, agent?.NonJsonLines ?? 0);

    private static RunResult Failed(string code, string message) => new(null, null, null, new RunFailure(code, message), null);
}

/// <summary>Whether a deadline has passed: a pure function of elapsed times.</summary>
internal static class Deadlines
{
    public static StopReason? Passed(TimeSpan running, TimeSpan silent, TimeSpan? timeout, TimeSpan? stall) =>
        timeout is { } t && running >= t ? StopReason.Timeout
        : stall is { } s && silent >= s ? StopReason.Stall
        : null;
}
