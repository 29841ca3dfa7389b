using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Corral.Agents;
using Corral.Agents.ClaudeCode;
using Corral.Agents.Codex;
using Corral.Agents.Command;
using Corral.Agents.Gemini;
using Corral.Processes;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Tasks;

/// <summary>Where the server keeps its files.</summary>
internal sealed record ServerPaths(string DataDirectory)
{
    public string Database => Path.Combine(DataDirectory, "corral.db");

    public string TaskDirectory(string id) => Path.Combine(DataDirectory, "tasks", id);

    public string EventsFile(string id) => Path.Combine(TaskDirectory(id), TaskLog.EventsFile);

    public string TranscriptFile(string id) => Path.Combine(TaskDirectory(id), TaskLog.TranscriptFile);
}

/// <summary>An agent the server offers: its adapter, whether it is enabled, and the CLI it needs (if any).</summary>
internal sealed record AgentRegistration(IAgentAdapter Adapter, bool Enabled, string? Executable);

/// <summary>The result of <see cref="TaskManager.Create"/>: a task (new or the idempotent original), or a refusal.</summary>
internal sealed record CreateResult(TaskRecord? Record, TaskRunner? Runner, bool Existing, ApiProblem? Problem);

/// <summary>
/// Admits, schedules and finds tasks: a bounded pool of running tasks with a bounded queue, one running task per
/// Claude session, idempotency keys. On start-up it marks what a previous process left running as interrupted and
/// kills what is left of those trees; on shutdown it stops every task through the cancel ladder.
/// </summary>
internal sealed class TaskManager : IHostedService, IDisposable
{
    private readonly CorralOptions _options;
    private readonly ServerPaths _paths;
    private readonly TaskStore _store;
    private readonly ILogger<TaskManager> _logger;
    private readonly Dictionary<string, AgentRegistration> _agents;
    private readonly Lock _gate = new();
    private readonly Dictionary<string, TaskRunner> _active = new(StringComparer.Ordinal);
    private readonly LinkedList<TaskRunner> _queue = new();
    private readonly Dictionary<string, TaskRunner> _sessions = new(StringComparer.Ordinal);
    private int _running;
    private volatile bool _draining;

    public TaskManager(IOptions<CorralOptions> options, ServerPaths paths, IHostApplicationLifetime lifetime, ILogger<TaskManager> logger)
    {
        // Stopping starts before the web server waits for open requests: an event stream or a ?wait on a running task
        // only ends when the task does, so the tasks must start stopping first.
        lifetime.ApplicationStopping.Register(() => BeginDrain());
        _options = options.Value;
        _paths = paths;
        _logger = logger;
        Directory.CreateDirectory(paths.DataDirectory);
        _store = new TaskStore(paths.Database);
        var claude = _options.ClaudeCode;
        _agents = new Dictionary<string, AgentRegistration>(StringComparer.Ordinal)
        {
            [ClaudeCodeAdapter.AgentName] = new(new ClaudeCodeAdapter(new ClaudeCodeSettings
            {
                Executable = claude.Executable,
                ExtraArguments = claude.ExtraArguments.ToArray(),
            }), claude.Enabled, claude.Executable),
            [CommandAdapter.AgentName] = new(new CommandAdapter(), _options.Command.Enabled, null),
            [CodexAdapter.AgentName] = new(new CodexAdapter(_options.Codex.Executable), _options.Codex.Enabled, _options.Codex.Executable),
            [GeminiAdapter.AgentName] = new(new GeminiAdapter(_options.Gemini.Executable), _options.Gemini.Enabled, _options.Gemini.Executable),
        };
    }

    public ServerPaths Paths => _paths;

    public bool Draining => _draining;

    public TaskRunner? Active(string id)
    {
        lock (_gate)
            return _active.GetValueOrDefault(id);
    }

    public TaskRecord? Get(string id) => Active(id)?.Record ?? _store.Get(id);

    public (List<TaskRecord> Items, long? LastSeq) List(TaskState? status, string? sessionId, int limit, long? before)
    {
        var (items, last) = _store.List(status, sessionId, limit, before);

        // The store has the durable state; an active task's in-memory record is at least as new.
        for (int i = 0; i < items.Count; i++)
        {
            if (Active(items[i].Id) is { } runner)
                items[i] = runner.Record;
        }

        return (items, last);
    }

    /// <summary>Whether an agent can take tasks now, and if not, why.</summary>
    public (bool Ready, string? Reason) Availability(string agent)
    {
        if (_draining)
            return (false, "The server is draining.");
        if (!_agents.TryGetValue(agent, out var registration))
            return (false, $"Unknown agent '{agent}'.");
        if (!registration.Enabled)
            return (false, $"The {agent} agent is disabled by configuration.");
        if (registration.Executable is { } exe && ExecutableLocator.Find(exe) is null)
            return (false, $"The {agent} CLI '{exe}' was not found.");
        return (true, null);
    }

    public CreateResult Create(CreateTaskRequest body)
    {
        var errors = new List<string>();
        string agentName = body.Agent ?? "";
        if (string.IsNullOrEmpty(body.Agent))
            errors.Add($"agent: required ({string.Join(", ", _agents.Keys.Select(k => $"'{k}'"))}).");
        else if (!_agents.ContainsKey(agentName))
            errors.Add($"agent: unknown agent '{body.Agent}' (use {string.Join(", ", _agents.Keys.Select(k => $"'{k}'"))}).");
        if (errors.Count > 0)
            return Refused(Invalid(errors));

        var (ready, reason) = Availability(agentName);
        if (!ready)
            return Refused(new ApiProblem(503, "agent_not_available", "Agent not available", reason, _options.RetryAfterSeconds));

        if (body.Limits?.TimeoutSeconds is <= 0)
            errors.Add("limits.timeoutSeconds: must be positive.");
        if (body.Limits?.StallTimeoutSeconds is < 0)
            errors.Add("limits.stallTimeoutSeconds: must be zero (off) or positive.");
        foreach (var key in body.Env?.Keys.ToArray() ?? [])
        {
            if (key.Length == 0 || key.Contains('=') || key.Contains('\0') || body.Env![key] is null || body.Env[key].Contains('\0'))
                errors.Add($"env.{key}: names must be non-empty without '=' or NUL, values strings without NUL.");
        }

        if (body.IdempotencyKey is { Length: 0 or > 200 })
            errors.Add("idempotencyKey: 1 to 200 characters.");
        if (body.Workdir is { } w && (w.Length == 0 || w.Contains('\0')))
            errors.Add("workdir: not a usable path.");
        if (errors.Count > 0)
            return Refused(Invalid(errors));

        string hash = Hash(body);
        if (body.IdempotencyKey is { } key1 && FindIdempotent(key1, hash) is { } earlier)
            return earlier;

        string id = "tsk_" + Guid.CreateVersion7().ToString("N");
        string taskDir = _paths.TaskDirectory(id);
        string? workdir = ResolveWorkdir(body.Workdir, taskDir, errors);
        string? newSession = agentName == ClaudeCodeAdapter.AgentName && body.ResumeSessionId is null ? Guid.NewGuid().ToString() : null;
        var request = new AgentRequest
        {
            Prompt = body.Prompt,
            Command = body.Command,
            WorkingDirectory = workdir ?? "/",
            TaskDirectory = taskDir,
            NewSessionId = newSession,
            ResumeSessionId = body.ResumeSessionId,
            Model = body.Model,
            MaxTurns = body.Limits?.MaxTurns,
            PermissionMode = body.Permissions?.Mode,
            AllowedTools = body.Permissions?.AllowedTools,
            DisallowedTools = body.Permissions?.DisallowedTools,
            AppendSystemPrompt = body.AppendSystemPrompt,
            McpServers = body.McpServers,
            Environment = body.Env,
        };
        var adapter = _agents[agentName].Adapter;
        errors.AddRange(adapter.Validate(request));
        if (errors.Count > 0)
            return Discard(taskDir, Refused(Invalid(errors)));

        double timeout = body.Limits?.TimeoutSeconds ?? _options.DefaultTimeoutSeconds;
        double stall = body.Limits?.StallTimeoutSeconds ?? _options.DefaultStallTimeoutSeconds;
        var record = new TaskRecord
        {
            Id = id,
            Status = TaskState.Queued,
            Agent = agentName,
            SessionId = newSession ?? body.ResumeSessionId,
            Workdir = workdir,
            CreatedAt = DateTimeOffset.UtcNow,
            IdempotencyKey = body.IdempotencyKey,
            Metadata = body.Metadata,
        };

        var admitted = Admit(body, hash, record, adapter, request, taskDir, timeout, stall);
        return admitted.Problem is null && !admitted.Existing ? admitted : Discard(taskDir, admitted);
    }

    private CreateResult Admit(CreateTaskRequest body, string hash, TaskRecord record, IAgentAdapter adapter, AgentRequest request,
        string taskDir, double timeout, double stall)
    {
        string id = record.Id;
        lock (_gate)
        {
            if (_draining)
                return Refused(new ApiProblem(503, "agent_not_available", "Agent not available", "The server is draining.", _options.RetryAfterSeconds));
            if (body.IdempotencyKey is { } key2 && FindIdempotent(key2, hash) is { } raced)
                return raced;
            if (body.ResumeSessionId is { } session && _sessions.ContainsKey(session))
                return Refused(new ApiProblem(409, "session_busy", "Session busy", $"Session '{session}' already has a queued or running task."));
            if (_running >= _options.MaxConcurrentTasks && _queue.Count >= _options.MaxQueuedTasks)
                return Refused(new ApiProblem(429, "busy", "Too many tasks",
                    $"{_running} tasks are running and {_queue.Count} are queued.", _options.RetryAfterSeconds));

            var log = new TaskLog(taskDir);
            _store.Insert(record, JsonSerializer.Serialize(body, ApiJson.Options), hash);
            log.AppendEvent("task.status", new { status = TaskState.Queued, at = record.CreatedAt });
            var runner = new TaskRunner(record, adapter, request, log, _store, _options,
                timeout > 0 ? TimeSpan.FromSeconds(timeout) : null, stall > 0 ? TimeSpan.FromSeconds(stall) : null,
                body.ResumeSessionId, ReleaseSession, _logger);
            _active[id] = runner;
            if (runner.SessionKey is { } key)
                _sessions[key] = runner;
            if (_running < _options.MaxConcurrentTasks)
                StartLocked(runner);
            else
                _queue.AddLast(runner);
            return new CreateResult(runner.Record, runner, false, null);
        }
    }

    /// <summary>Cancels a task: <c>null</c> for an unknown id; the current record otherwise (idempotent).</summary>
    public TaskRecord? Cancel(string id)
    {
        TaskRunner? runner;
        bool wasQueued = false;
        lock (_gate)
        {
            runner = _active.GetValueOrDefault(id);
            if (runner is not null && _queue.Remove(runner))
            {
                wasQueued = true;
                ForgetLocked(runner);
            }
        }

        if (runner is null)
            return _store.Get(id);
        if (wasQueued)
            runner.FinishWithoutRunning(StopReason.Cancel);
        else
            runner.RequestStop(StopReason.Cancel);
        return runner.Record;
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var (record, treeId, cgroupPath) in _store.ListUnfinished())
        {
            IReadOnlyList<KilledProcess> killed = [];
            if (treeId is not null)
            {
                try
                {
                    killed = await ProcessTree.KillLeftoversAsync(treeId, cgroupPath).ConfigureAwait(false);
                }
                catch (Exception e)
                {
                    _logger.LogError(e, "Task {Id}: could not kill what is left of tree {Tree}", record.Id, treeId);
                }
            }

            var now = DateTimeOffset.UtcNow;
            var error = new TaskError("interrupted", record.Status == TaskState.Running
                ? $"The server stopped while the task was running; {killed.Count} leftover process(es) of its tree were killed at start-up."
                : "The server stopped while the task was queued.");
            var final = record with
            {
                Status = TaskState.Interrupted,
                EndedAt = now,
                Error = error,
                Process = (record.Process ?? new ProcessReport()) with
                {
                    Killed = killed.Select(KilledReport.From).ToList(),
                },
            };
            _store.Update(final);
            using var log = new TaskLog(_paths.TaskDirectory(record.Id));
            log.AppendEvent("task.status", new { status = TaskState.Interrupted, at = now });
            log.AppendEvent("task.result", final);
            log.AppendEvent("task.end", new { status = TaskState.Interrupted, error });
            _logger.LogWarning("Task {Id} was {Status} when the server stopped: marked interrupted, {Count} leftover process(es) killed",
                record.Id, record.Status, killed.Count);
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        var running = BeginDrain();
        try
        {
            await Task.WhenAll(running.Select(r => r.Finished)).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            _logger.LogError("Shutdown deadline passed with {Count} task(s) still stopping", running.Count(r => !r.Finished.IsCompleted));
        }
    }

    /// <summary>Refuses new tasks, ends the queued ones and starts the cancel ladder on the running ones. Idempotent.</summary>
    private List<TaskRunner> BeginDrain()
    {
        List<TaskRunner> running;
        List<TaskRunner> queued;
        lock (_gate)
        {
            _draining = true;
            queued = _queue.ToList();
            _queue.Clear();
            foreach (var r in queued)
                ForgetLocked(r);
            running = _active.Values.ToList();
        }

        foreach (var r in queued)
            r.FinishWithoutRunning(StopReason.Shutdown);
        foreach (var r in running)
            r.RequestStop(StopReason.Shutdown);
        return running;
    }

    public void Dispose() => _store.Dispose();

    private void StartLocked(TaskRunner runner)
    {
        _running++;
        _ = Task.Run(async () =>
        {
            try
            {
                await runner.RunAsync().ConfigureAwait(false);
            }
            finally
            {
                OnFinished(runner);
            }
        });
    }

    private void OnFinished(TaskRunner runner)
    {
        lock (_gate)
        {
            _running--;
            ForgetLocked(runner);
            while (_running < _options.MaxConcurrentTasks && !_draining && _queue.First is { } next)
            {
                _queue.RemoveFirst();
                StartLocked(next.Value);
            }
        }
    }

    private void ForgetLocked(TaskRunner runner)
    {
        _active.Remove(runner.Id);
        ReleaseSessionLocked(runner);
    }

    /// <summary>Called by a runner just before its end becomes visible, so a caller who sees it can resume at once.</summary>
    private void ReleaseSession(TaskRunner runner)
    {
        lock (_gate)
            ReleaseSessionLocked(runner);
    }

    private void ReleaseSessionLocked(TaskRunner runner)
    {
        if (runner.SessionKey is { } key && _sessions.TryGetValue(key, out var owner) && owner == runner)
            _sessions.Remove(key);
    }

    private CreateResult? FindIdempotent(string key, string hash)
    {
        if (_store.GetByIdempotencyKey(key) is not { } found)
            return null;
        if (found.Hash != hash)
            return Refused(new ApiProblem(409, "idempotency_conflict", "Idempotency key reused",
                $"Task {found.Record.Id} was created with this idempotency key and a different body."));
        var runner = Active(found.Record.Id);
        return new CreateResult(runner?.Record ?? found.Record, runner, true, null);
    }

    private string? ResolveWorkdir(string? workdir, string taskDir, List<string> errors)
    {
        if (workdir is null)
        {
            string own = Path.Combine(taskDir, "work");
            Directory.CreateDirectory(own);
            return own;
        }

        if (Path.IsPathRooted(workdir))
        {
            if (!Directory.Exists(workdir))
            {
                errors.Add($"workdir: '{workdir}' does not exist.");
                return null;
            }

            return Path.GetFullPath(workdir);
        }

        string root = Path.GetFullPath(_options.WorkspaceRoot ?? Path.Combine(_paths.DataDirectory, "workspaces"));
        string full = Path.GetFullPath(Path.Combine(root, workdir));
        if (!full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            errors.Add("workdir: a relative workdir must stay inside the workspace root.");
            return null;
        }

        Directory.CreateDirectory(full);
        return full;
    }

    /// <summary>A refused task leaves nothing behind (its directory was made for the default workdir).</summary>
    private static CreateResult Discard(string taskDir, CreateResult refused)
    {
        try
        {
            if (Directory.Exists(taskDir))
                Directory.Delete(taskDir, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return refused;
    }

    private static string Hash(CreateTaskRequest body) =>
        Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(body, ApiJson.Options))));

    private static ApiProblem Invalid(IReadOnlyList<string> errors) =>
        new(400, "invalid_request", "Invalid request", string.Join(" ", errors), null, errors);

    private static CreateResult Refused(ApiProblem problem) => new(null, null, false, problem);
}

/// <summary>Finds an executable the way <c>execvp</c> would.</summary>
internal static class ExecutableLocator
{
    public static string? Find(string name)
    {
        if (name.Contains('/'))
            return IsExecutable(name) ? Path.GetFullPath(name) : null;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (IsExecutable(candidate))
                return candidate;
        }

        return null;
    }

    private static bool IsExecutable(string path)
    {
        try
        {
            if (OperatingSystem.IsWindows())
                return File.Exists(path);
            return File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
