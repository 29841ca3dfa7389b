using System.Text.Json.Nodes;

namespace Corral.Server.Api;

/// <summary>Where a task is in its life.</summary>
public enum TaskState
{
    /// <summary>Waiting for a slot.</summary>
    Queued,

    /// <summary>The agent process is running.</summary>
    Running,

    /// <summary>The agent reported success.</summary>
    Succeeded,

    /// <summary>The agent reported an error, or could not be started.</summary>
    Failed,

    /// <summary>The whole-task timeout or the stall timeout passed (see <c>error.code</c>).</summary>
    TimedOut,

    /// <summary>Cancelled by a caller.</summary>
    Cancelled,

    /// <summary>The agent ended without a result and none could be recovered.</summary>
    Lost,

    /// <summary>The server stopped (crash or shutdown) while the task was queued or running.</summary>
    Interrupted,
}

/// <summary>The body of <c>POST /v1/tasks</c>.</summary>
public sealed record CreateTaskRequest
{
    /// <summary><c>claude-code</c>, <c>command</c>, <c>codex</c> or <c>gemini</c>.</summary>
    public string? Agent { get; init; }

    /// <summary>The prompt (required for claude-code; written to stdin for command).</summary>
    public string? Prompt { get; init; }

    /// <summary>The argv, for the command agent.</summary>
    public List<string>? Command { get; init; }

    /// <summary>The working directory: absolute (must exist) or relative to the workspace root (created). Default: a fresh directory per task.</summary>
    public string? Workdir { get; init; }

    /// <summary>The model.</summary>
    public string? Model { get; init; }

    /// <summary>A Claude session to resume. One running task per session.</summary>
    public string? ResumeSessionId { get; init; }

    /// <summary>Text appended to the system prompt.</summary>
    public string? AppendSystemPrompt { get; init; }

    /// <summary>Deadlines and turn limit.</summary>
    public TaskLimits? Limits { get; init; }

    /// <summary>Tool permissions.</summary>
    public TaskPermissions? Permissions { get; init; }

    /// <summary>Claude's <c>mcpServers</c> object.</summary>
    public JsonObject? McpServers { get; init; }

    /// <summary>Extra environment variables for the agent.</summary>
    public Dictionary<string, string>? Env { get; init; }

    /// <summary>The same key returns the same task.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Anything the caller wants kept with the task.</summary>
    public JsonObject? Metadata { get; init; }
}

/// <summary>Deadlines and turn limit of a task.</summary>
public sealed record TaskLimits
{
    /// <summary>The whole task; error code <c>timeout</c>.</summary>
    public double? TimeoutSeconds { get; init; }

    /// <summary>No output at all for this long; error code <c>stall</c>. 0 turns it off.</summary>
    public double? StallTimeoutSeconds { get; init; }

    /// <summary>Agent turns.</summary>
    public int? MaxTurns { get; init; }
}

/// <summary>Tool permissions of a task.</summary>
public sealed record TaskPermissions
{
    /// <summary>The permission mode, e.g. <c>acceptEdits</c> or <c>bypassPermissions</c>.</summary>
    public string? Mode { get; init; }

    /// <summary>Allowed tool rules, e.g. <c>Bash(git *)</c>.</summary>
    public List<string>? AllowedTools { get; init; }

    /// <summary>Denied tool rules.</summary>
    public List<string>? DisallowedTools { get; init; }
}

/// <summary>A task: what was asked, where it is, and how it ended.</summary>
public sealed record TaskRecord
{
    /// <summary>The task id.</summary>
    public required string Id { get; init; }

    /// <summary>Where it is.</summary>
    public required TaskState Status { get; init; }

    /// <summary>The agent.</summary>
    public required string Agent { get; init; }

    /// <summary>The agent session (Claude), known from the start for new sessions.</summary>
    public string? SessionId { get; init; }

    /// <summary>The working directory.</summary>
    public string? Workdir { get; init; }

    /// <summary>When it was accepted.</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>When its process started.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When it reached its final status.</summary>
    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>The agent's result.</summary>
    public TaskResult? Result { get; init; }

    /// <summary>Token usage as the agent reported it.</summary>
    public JsonObject? Usage { get; init; }

    /// <summary>Cost in US dollars, as the agent reported it.</summary>
    public double? CostUsd { get; init; }

    /// <summary>From start to end of the run, in milliseconds.</summary>
    public long? DurationMs { get; init; }

    /// <summary>What happened to the process tree.</summary>
    public ProcessReport? Process { get; init; }

    /// <summary>Why it did not succeed.</summary>
    public TaskError? Error { get; init; }

    /// <summary>The caller's idempotency key.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>The caller's metadata.</summary>
    public JsonObject? Metadata { get; init; }

    /// <summary>Whether the status is final.</summary>
    public bool IsTerminal => Status is not (TaskState.Queued or TaskState.Running);
}

/// <summary>The agent's final result.</summary>
public sealed record TaskResult
{
    /// <summary>The final text.</summary>
    public string? Text { get; init; }

    /// <summary>Claude's result subtype.</summary>
    public string? Subtype { get; init; }

    /// <summary>Whether the agent flagged it as an error.</summary>
    public bool IsError { get; init; }

    /// <summary>Turns taken.</summary>
    public int? NumTurns { get; init; }

    /// <summary>Rebuilt from the session transcript because the output had no result.</summary>
    public bool Recovered { get; init; }

    /// <summary>Claude's terminal reason.</summary>
    public string? TerminalReason { get; init; }

    /// <summary>An API error status seen by the agent.</summary>
    public int? ApiErrorStatus { get; init; }
}

/// <summary>What happened to a task's process tree.</summary>
public sealed record ProcessReport
{
    /// <summary>The direct child's pid.</summary>
    public int? Pid { get; init; }

    /// <summary>Its exit code.</summary>
    public int? ExitCode { get; init; }

    /// <summary>The signal that ended it.</summary>
    public int? Signal { get; init; }

    /// <summary><c>cgroup</c> or <c>session</c>.</summary>
    public string? Containment { get; init; }

    /// <summary>Processes killed during teardown.</summary>
    public List<KilledReport> Killed { get; init; } = [];

    /// <summary>From the child's exit to the end of draining.</summary>
    public long? DrainAfterExitMs { get; init; }

    /// <summary>Bytes read from stdout.</summary>
    public long StdoutBytes { get; init; }

    /// <summary>Bytes read from stderr.</summary>
    public long StderrBytes { get; init; }

    /// <summary>Stdout lines that were not JSON.</summary>
    public int NonJsonLines { get; init; }

    /// <summary>Whether something still held the output pipes when reading stopped.</summary>
    public bool HolderSurvived { get; init; }
}

/// <summary>A process killed during teardown (the same shape as <c>corral run --report</c>).</summary>
/// <param name="Pid">Its pid.</param>
/// <param name="Command">Its command line, capped at 200 characters.</param>
/// <param name="FoundBy">How it was found to belong to the tree.</param>
public sealed record KilledReport(int Pid, string Command, Corral.Processes.FoundBy FoundBy)
{
    internal static KilledReport From(Corral.Processes.KilledProcess process) => new(process.Pid, process.CommandLine, process.FoundBy);
}

/// <summary>Why a task did not succeed, or why a request was refused.</summary>
/// <param name="Code">
/// <c>agent_error</c>, <c>timeout</c>, <c>stall</c>, <c>cancelled</c>, <c>result_lost</c>, <c>spawn_failed</c>,
/// <c>interrupted</c>.
/// </param>
/// <param name="Message">For people.</param>
public sealed record TaskError(string Code, string Message);

/// <summary>A page of tasks, newest first.</summary>
/// <param name="Items">The tasks.</param>
/// <param name="NextCursor">Pass as <c>cursor</c> for the next page; <c>null</c> on the last.</param>
public sealed record TaskPage(List<TaskRecord> Items, string? NextCursor);
