using System.Diagnostics;
using Corral.Agents;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Storage;
using Microsoft.Extensions.Logging;

namespace Corral.Server.Internal.Tasks;

/// <summary>Why the runtime stopped a task before the agent finished by itself.</summary>
internal enum StopReason
{
    Cancel,
    Timeout,
    Stall,
    Shutdown,
}

/// <summary>
/// Runs one task: starts the agent's process tree, appends every line to the transcript and every event to the event
/// log before anyone can see it, enforces the deadlines through the cancel ladder (agent interrupt first, then the
/// process ladder), and writes the final record before <c>task.end</c>.
/// </summary>
internal sealed class TaskRunner
{
    private const int MaxStderrEvents = 1000;
    private static readonly TimeSpan StdinBound = TimeSpan.FromSeconds(10);

    private readonly IAgentAdapter _adapter;
    private readonly AgentRequest _request;
    private readonly TaskStore _store;
    private readonly CorralOptions _options;
    private readonly ILogger _logger;
    private readonly Action<TaskRunner> _releaseSession;
    private readonly TimeSpan? _timeout;
    private readonly TimeSpan? _stallTimeout;
    private readonly Lock _gate = new();
    private readonly SemaphoreSlim _stdinLock = new(1, 1);
    private readonly TaskCompletionSource<TaskRecord> _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _resultSeen = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile TaskRecord _record;
    private StopReason? _stopReason;
    private ProcessTree? _tree;
    private IAgentRun? _run;
    private bool _stdinClosed;
    private long _lastOutput = Stopwatch.GetTimestamp();
    private int _stderrEvents;

    public TaskRunner(TaskRecord record, IAgentAdapter adapter, AgentRequest request, TaskLog log, TaskStore store,
        CorralOptions options, TimeSpan? timeout, TimeSpan? stallTimeout, string? sessionKey, Action<TaskRunner> releaseSession, ILogger logger)
    {
        _releaseSession = releaseSession;
        _record = record;
        _adapter = adapter;
        _request = request;
        Log = log;
        _store = store;
        _options = options;
        _timeout = timeout;
        _stallTimeout = stallTimeout;
        SessionKey = sessionKey;
        _logger = logger;
    }

    public string Id => _record.Id;

    public TaskRecord Record => _record;

    public TaskLog Log { get; }

    /// <summary>The Claude session this task holds (only one running task per session).</summary>
    public string? SessionKey { get; }

    /// <summary>Completes with the final record, after it is stored and <c>task.end</c> is in the log.</summary>
    public Task<TaskRecord> Finished => _finished.Task;

    public bool StopRequested
    {
        get
        {
            lock (_gate)
                return _stopReason is not null;
        }
    }

    /// <summary>Starts the cancel ladder. Idempotent: the first reason wins.</summary>
    public void RequestStop(StopReason reason)
    {
        ProcessTree? tree;
        lock (_gate)
        {
            if (_stopReason is not null || _finished.Task.IsCompleted)
                return;
            _stopReason = reason;
            tree = _tree;
        }

        _logger.LogInformation("Task {Id}: stopping ({Reason})", Id, reason);
        if (tree is not null)
            _ = StopLadderAsync(tree);
    }

    /// <summary>Ends a task that never started (cancelled while queued, or the server stopping).</summary>
    public void FinishWithoutRunning(StopReason reason)
    {
        lock (_gate)
            _stopReason ??= reason;
        Finish(null, null, null);
    }

    public async Task RunAsync()
    {
        ProcessOutcome? outcome = null;
        AgentOutcome? agent = null;
        string? spawnError = null;
        try
        {
            if (!StopRequested)
            {
                _run = _adapter.Prepare(_request);
                SetRunning();
                (outcome, spawnError) = await RunProcessAsync(_run).ConfigureAwait(false);
            }

            agent = _run?.Complete(outcome);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            spawnError = "Could not prepare the task: " + e.Message;
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id} failed unexpectedly", Id);
            spawnError = "Internal error: " + e.Message;
        }
        finally
        {
            Finish(agent, outcome, spawnError);
        }
    }

    private void SetRunning()
    {
        _record = _record with { Status = TaskState.Running, StartedAt = DateTimeOffset.UtcNow };
        _store.Update(_record);
        Log.AppendEvent("task.status", new { status = TaskState.Running, at = _record.StartedAt });
    }

    private async Task<(ProcessOutcome?, string?)> RunProcessAsync(IAgentRun run)
    {
        var spec = run.Spec with
        {
            Teardown = new TeardownOptions
            {
                CloseInputGrace = TimeSpan.FromSeconds(_options.CloseInputGraceSeconds),
                Grace = TimeSpan.FromSeconds(_options.TerminateGraceSeconds),
            },
        };

        ProcessTree tree;
        try
        {
            tree = ProcessTree.Start(spec);
        }
        catch (ProcessSpawnException e)
        {
            return (null, e.Message);
        }

        await using (tree.ConfigureAwait(false))
        {
            _store.SetProcess(Id, tree.TreeId, tree.CgroupPath, tree.Pid);
            bool stopNow;
            lock (_gate)
            {
                _tree = tree;
                stopNow = _stopReason is not null;
            }

            if (stopNow)
                _ = StopLadderAsync(tree);
            _ = FeedInputAsync(tree, run);
            var watchdog = WatchAsync(tree);

            await foreach (var line in tree.ReadLinesAsync().ConfigureAwait(false))
            {
                Interlocked.Exchange(ref _lastOutput, Stopwatch.GetTimestamp());
                OnLine(run, line);
                if (run.HasResult && _resultSeen.TrySetResult())
                    _ = AfterResultAsync(tree);
            }

            var outcome = await tree.Completion.ConfigureAwait(false);
            await watchdog.ConfigureAwait(false);
            return (outcome, null);
        }
    }

    private void OnLine(IAgentRun run, OutputLine line)
    {
        var parsed = run.Parse(line);
        bool stdout = line.Stream == OutputStream.StandardOutput;

        // On disk first, then announced.
        Log.AppendTranscript(line.Text, parsed.IsJson && stdout, stdout ? "stdout" : "stderr");
        foreach (var e in parsed.Events)
        {
            if (e is AgentStderr && ++_stderrEvents > MaxStderrEvents)
            {
                if (_stderrEvents == MaxStderrEvents + 1)
                    Log.AppendEvent("agent.notice", new AgentNotice("stderr_truncated", $"More than {MaxStderrEvents} stderr lines; the rest are in the transcript only."));
                continue;
            }

            Log.AppendEvent(e.EventName, e);
        }
    }

    private async Task FeedInputAsync(ProcessTree tree, IAgentRun run)
    {
        if (!run.InitialInput.IsEmpty)
            await WriteInputAsync(tree, run.InitialInput).ConfigureAwait(false);
        if (!run.KeepInputOpen)
            await CloseInputAsync(tree).ConfigureAwait(false);
    }

    private async Task<bool> WriteInputAsync(ProcessTree tree, ReadOnlyMemory<byte> bytes)
    {
        if (!await _stdinLock.WaitAsync(StdinBound).ConfigureAwait(false))
            return false;
        try
        {
            if (_stdinClosed)
                return false;
            using var cts = new CancellationTokenSource(StdinBound);
            await tree.StandardInput.WriteAsync(bytes, cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            return false; // the agent stopped reading; the ladder takes it from here
        }
        finally
        {
            _stdinLock.Release();
        }
    }

    private async Task CloseInputAsync(ProcessTree tree)
    {
        // A write stuck on a full pipe holds the lock for at most StdinBound; closing then goes ahead regardless.
        bool locked = await _stdinLock.WaitAsync(StdinBound).ConfigureAwait(false);
        try
        {
            if (_stdinClosed)
                return;
            _stdinClosed = true;
            await tree.StandardInput.DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException)
        {
        }
        finally
        {
            if (locked)
                _stdinLock.Release();
        }
    }

    /// <summary>The result is in: close stdin so the agent exits; if it lingers, the process ladder ends it.</summary>
    private async Task AfterResultAsync(ProcessTree tree)
    {
        // The exit grace counts from the result, whatever closing stdin takes.
        var grace = Task.Delay(TimeSpan.FromSeconds(_options.ExitGraceSeconds));
        await CloseInputAsync(tree).ConfigureAwait(false);
        var exited = await Task.WhenAny(tree.Completion, grace).ConfigureAwait(false);
        if (exited != tree.Completion)
        {
            _logger.LogInformation("Task {Id}: agent still running {Grace}s after its result; stopping its tree", Id, _options.ExitGraceSeconds);
            tree.Cancel();
        }
    }

    /// <summary>Interrupt first (keeps the partial result and cost), then the process ladder.</summary>
    private async Task StopLadderAsync(ProcessTree tree)
    {
        try
        {
            if (_run?.InterruptInput is { } interrupt && !_resultSeen.Task.IsCompleted && !tree.Completion.IsCompleted
                && await WriteInputAsync(tree, interrupt).ConfigureAwait(false))
            {
                await Task.WhenAny(_resultSeen.Task, tree.Completion, Task.Delay(TimeSpan.FromSeconds(_options.InterruptGraceSeconds))).ConfigureAwait(false);
                if (_resultSeen.Task.IsCompleted)
                    return; // AfterResultAsync sees it out
            }

            if (!tree.Completion.IsCompleted)
                tree.Cancel();
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id}: cancel ladder failed; killing the tree", Id);
            tree.Cancel();
        }
    }

    private async Task WatchAsync(ProcessTree tree)
    {
        if (_timeout is null && _stallTimeout is null)
            return;
        long start = Stopwatch.GetTimestamp();
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200));
        while (!tree.Completion.IsCompleted && !_resultSeen.Task.IsCompleted && !StopRequested)
        {
            await Task.WhenAny(timer.WaitForNextTickAsync().AsTask(), tree.Completion).ConfigureAwait(false);
            if (_timeout is { } t && Stopwatch.GetElapsedTime(start) >= t)
                RequestStop(StopReason.Timeout);
            else if (_stallTimeout is { } s && Stopwatch.GetElapsedTime(Interlocked.Read(ref _lastOutput)) >= s)
                RequestStop(StopReason.Stall);
        }
    }

    private void Finish(AgentOutcome? agent, ProcessOutcome? process, string? spawnError)
    {
        if (_finished.Task.IsCompleted)
            return;
        StopReason? stop;
        lock (_gate)
            stop = _stopReason;

        var (status, error) = Decide(agent, stop, spawnError);
        var now = DateTimeOffset.UtcNow;
        var record = _record with
        {
            Status = status,
            EndedAt = now,
            SessionId = agent?.SessionId ?? _record.SessionId,
            Result = agent?.Result is { } r ? new TaskResult
            {
                Text = r.Text,
                Subtype = r.Subtype,
                IsError = r.IsError,
                NumTurns = r.NumTurns,
                Recovered = r.Recovered,
                TerminalReason = r.TerminalReason,
                ApiErrorStatus = r.ApiErrorStatus,
            } : null,
            Usage = agent?.Usage,
            CostUsd = agent?.CostUsd,
            DurationMs = _record.StartedAt is { } started ? (long)(now - started).TotalMilliseconds : null,
            Process = process is null ? null : new ProcessReport
            {
                Pid = process.Pid,
                ExitCode = process.ExitCode,
                Signal = process.Signal,
                Containment = process.Containment.ToString().ToLowerInvariant(),
                Killed = process.Killed.Select(KilledReport.From).ToList(),
                DrainAfterExitMs = (long)process.DrainAfterExit.TotalMilliseconds,
                StdoutBytes = process.StandardOutputBytes,
                StderrBytes = process.StandardErrorBytes,
                NonJsonLines = agent?.NonJsonLines ?? 0,
                HolderSurvived = process.HolderSurvived,
            },
            Error = error,
        };

        // The process tree is gone by now: free the session before anyone can see the end and resume it.
        _releaseSession(this);
        _record = record;
        try
        {
            // The record is durable before anyone is told the task ended.
            _store.Update(record);
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id}: could not store the final record", Id);
        }

        try
        {
            Log.AppendEvent("task.status", new { status, at = now });
            Log.AppendEvent("task.result", record);
            Log.AppendEvent("task.end", new { status, error });
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id}: could not append the final events", Id);
        }
        finally
        {
            Log.Dispose();
            _finished.TrySetResult(record);
        }

        _logger.LogInformation("Task {Id} ended: {Status} {Code}", Id, status, error?.Code);
    }

    private (TaskState, TaskError?) Decide(AgentOutcome? agent, StopReason? stop, string? spawnError)
    {
        if (spawnError is not null)
            return (TaskState.Failed, new TaskError("spawn_failed", spawnError));
        if (agent?.Kind == AgentOutcomeKind.Succeeded)
            return (TaskState.Succeeded, null);
        string detail = agent?.Result?.Text is { Length: > 0 } t ? " " + Truncate(t) : "";
        switch (stop)
        {
            case StopReason.Cancel:
                return (TaskState.Cancelled, new TaskError("cancelled", "Cancelled by a caller."));
            case StopReason.Timeout:
                return (TaskState.TimedOut, new TaskError("timeout", $"The task ran longer than its timeout of {_timeout?.TotalSeconds}s."));
            case StopReason.Stall:
                return (TaskState.TimedOut, new TaskError("stall", $"The agent printed nothing for {_stallTimeout?.TotalSeconds}s."));
            case StopReason.Shutdown:
                return (TaskState.Interrupted, new TaskError("interrupted", "The server shut down while the task was queued or running."));
        }

        return agent?.Kind == AgentOutcomeKind.Failed
            ? (TaskState.Failed, new TaskError("agent_error", agent.Message ?? ("The agent reported an error." + detail)))
            : (TaskState.Lost, new TaskError("result_lost", agent?.Message ?? "The agent ended without a result."));
    }

    private static string Truncate(string s) => s.Length <= 500 ? s : s[..500] + "…";
}
