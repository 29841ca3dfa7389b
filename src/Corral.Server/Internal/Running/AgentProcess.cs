using Corral.Agents;
using Corral.Processes;
using Corral.Server.Hosting;
using Microsoft.Extensions.Logging;

namespace Corral.Server.Internal.Running;

/// <summary>
/// The input side of one agent process, and how it is stopped: writes the initial input (closing stdin after it
/// unless the agent keeps it open for an interrupt), closes stdin once the result is in and ends a process that
/// lingers after it, and runs the stop ladder (the agent's interrupt and a grace to answer with a result, then the
/// process ladder).
/// </summary>
internal sealed class AgentProcess
{
    private static readonly TimeSpan StdinBound = TimeSpan.FromSeconds(10);

    private readonly ProcessTree _tree;
    private readonly IAgentRun _run;
    private readonly CorralOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _id;
    private readonly SemaphoreSlim _stdinLock = new(1, 1);
    private readonly TaskCompletionSource _result = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _stdinClosed;
    private long _lastOutput;

    public AgentProcess(ProcessTree tree, IAgentRun run, CorralOptions options, TimeProvider time, ILogger logger, string id)
    {
        _tree = tree;
        _run = run;
        _options = options;
        _time = time;
        _logger = logger;
        _id = id;
        _lastOutput = time.GetTimestamp();
        _ = FeedInputAsync();
    }

    /// <summary>The clock's timestamp of the last output of either stream.</summary>
    public long LastOutput => Interlocked.Read(ref _lastOutput);

    public bool HasResult => _result.Task.IsCompleted;

    /// <summary>Whether the agent's result came while nobody had asked the task to stop.</summary>
    public bool ResultBeforeStop { get; private set; }

    public void SawOutput() => Interlocked.Exchange(ref _lastOutput, _time.GetTimestamp());

    /// <summary>
    /// The agent reported its result: close stdin so it exits; if it lingers, the process ladder ends it.
    /// <paramref name="stopRequested"/>: whether a stop was asked for already (told at the moment the result is read, not
    /// when the ladder's continuation gets to run).
    /// </summary>
    public void ResultSeen(bool stopRequested)
    {
        if (!_result.TrySetResult())
            return;
        ResultBeforeStop = !stopRequested;
        _ = AfterResultAsync();
    }

    /// <summary>Interrupt first (keeps the partial result and cost), then the process ladder.</summary>
    public async Task StopAsync()
    {
        try
        {
            if (_run.InterruptInput is { } interrupt && !HasResult && !_tree.Completion.IsCompleted && await WriteInputAsync(interrupt).ConfigureAwait(false))
            {
                var grace = Task.Delay(TimeSpan.FromSeconds(_options.InterruptGraceSeconds), _time);
                await Task.WhenAny(_result.Task, _tree.Completion, grace).ConfigureAwait(false);
                if (HasResult)
                    return; // AfterResultAsync sees it out
            }

            if (!_tree.Completion.IsCompleted)
                _tree.Cancel();
        }
        catch (Exception e)
        {
            _logger.LogError(e, "Task {Id}: the stop ladder failed; killing the tree", _id);
            _tree.Cancel();
        }
    }

    private async Task FeedInputAsync()
    {
        if (!_run.InitialInput.IsEmpty)
            await WriteInputAsync(_run.InitialInput).ConfigureAwait(false);
        if (!_run.KeepInputOpen)
            await CloseInputAsync().ConfigureAwait(false);
    }

    private async Task AfterResultAsync()
    {
        // The exit grace counts from the result, whatever closing stdin takes.
        var grace = Task.Delay(TimeSpan.FromSeconds(_options.ExitGraceSeconds), _time);
        await CloseInputAsync().ConfigureAwait(false);
        if (await Task.WhenAny(_tree.Completion, grace).ConfigureAwait(false) != _tree.Completion)
        {
            _logger.LogInformation("Task {Id}: agent still running {Grace}s after its result; stopping its tree", _id, _options.ExitGraceSeconds);
            _tree.Cancel();
        }
    }

    private async Task<bool> WriteInputAsync(ReadOnlyMemory<byte> bytes)
    {
        if (!await _stdinLock.WaitAsync(StdinBound).ConfigureAwait(false))
            return false;
        try
        {
            if (_stdinClosed)
                return false;
            using var cts = new CancellationTokenSource(StdinBound, _time);
            await _tree.StandardInput.WriteAsync(bytes, cts.Token).ConfigureAwait(false);
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

    private async Task CloseInputAsync()
    {
        // A write stuck on a full pipe holds the lock for at most StdinBound; closing then goes ahead regardless.
        bool locked = await _stdinLock.WaitAsync(StdinBound).ConfigureAwait(false);
        try
        {
            if (_stdinClosed)
                return;
            _stdinClosed = true;
            await _tree.StandardInput.DisposeAsync().ConfigureAwait(false);
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
}
