using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Corral.Agents;
using Corral.Processes;

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

    /// <summary>Extra environment variables for the agent (kept with the task, shown nowhere else).</summary>
    public Dictionary<string, string>? Env { get; init; }

    /// <summary>
    /// Secret environment variables for the agent (name → value, at least 4 characters). Their values are never stored:
    /// wherever the task's output, events and records are kept or sent, each occurrence reads <c>[secret:NAME]</c>.
    /// A task with secrets is not queued again after a restart (its secrets are gone with the server process).
    /// </summary>
    public Dictionary<string, string>? Secrets { get; init; }

    /// <summary>The same key returns the same task.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Anything the caller wants kept with the task.</summary>
    public JsonObject? Metadata { get; init; }

    /// <summary>
    /// Where to POST the task's final record (and, if asked, its start), signed per the Standard Webhooks specification.
    /// The URL must start with one of <c>Corral:Webhooks:AllowedUrlPrefixes</c>.
    /// </summary>
    public TaskWebhook? Webhook { get; init; }
}

/// <summary>A task's webhook: where deliveries go and which events are sent.</summary>
public sealed record TaskWebhook
{
    /// <summary>The event name of a task's start (a <c>task.status</c> delivery when its process starts).</summary>
    public const string StatusEvent = "status";

    /// <summary>The event name of a task's end (a <c>task.ended</c> delivery with the final record).</summary>
    public const string EndEvent = "end";

    /// <summary>An absolute http or https URL.</summary>
    public string? Url { get; init; }

    /// <summary><c>["end"]</c> (the default) or <c>["status", "end"]</c>.</summary>
    public List<string>? Events { get; init; }
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

    /// <summary>Memory the whole tree may use, in MiB (cgroup <c>memory.max</c>, swap off); error code <c>memory_limit</c> when it is hit. Default and maximum: <c>Corral:Limits</c>.</summary>
    public long? MemoryMaxMb { get; init; }

    /// <summary>Processes and threads the tree may have at once (<c>pids.max</c>); error code <c>pids_limit</c> when it is hit.</summary>
    public int? PidsMax { get; init; }

    /// <summary>CPU as a number of cores (0.5 is half a core; <c>cpu.max</c>): the tree is throttled past it, never killed.</summary>
    public double? CpuMax { get; init; }

    /// <summary>Output bytes (both streams) stored for the task; past it the task runs on and the rest is not stored. Default and maximum: <c>Corral:MaxOutputBytes</c>.</summary>
    public long? MaxOutputBytes { get; init; }
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

    /// <summary>Why a queued task has not started yet although a slot may be free (its memory limit does not fit, memory pressure).</summary>
    public string? QueueReason { get; init; }

    /// <summary>The uid the task ran as (its own, with isolation), when it is not the server's.</summary>
    public int? Uid { get; init; }

    /// <summary>The node of the fleet that runs or ran it (fleet mode only).</summary>
    public string? Node { get; init; }

    /// <summary>When its process started.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When it reached its final status.</summary>
    public DateTimeOffset? EndedAt { get; init; }

    /// <summary>The agent's result.</summary>
    public AgentResult? Result { get; init; }

    /// <summary>Token usage as the agent reported it.</summary>
    public JsonObject? Usage { get; init; }

    /// <summary>Cost in US dollars, as the agent reported it.</summary>
    public double? CostUsd { get; init; }

    /// <summary>From start to end of the run, in milliseconds.</summary>
    public long? DurationMs { get; init; }

    /// <summary>What happened to the process tree (the same shape as <c>corral run --report</c>).</summary>
    public ProcessOutcome? Process { get; init; }

    /// <summary>What was kept of the agent's output.</summary>
    public TaskOutput? Output { get; init; }

    /// <summary>Why it did not succeed.</summary>
    public TaskError? Error { get; init; }

    /// <summary>The caller's idempotency key.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>The caller's metadata.</summary>
    public JsonObject? Metadata { get; init; }

    /// <summary>The task's own webhook, as admitted (events filled in); the server's default webhooks are not shown.</summary>
    public TaskWebhook? Webhook { get; init; }

    /// <summary>Whether the status is final.</summary>
    [JsonIgnore]
    public bool IsTerminal => Status is not (TaskState.Queued or TaskState.Running);
}

/// <summary>What was kept of a task's output: it is stored once, byte for byte, up to the task's output cap.</summary>
/// <param name="StoredBytes">Bytes stored (stdout and stderr together).</param>
/// <param name="DroppedBytes">Bytes read but not stored: past <c>limits.maxOutputBytes</c>, or after the disk filled up.</param>
/// <param name="MaxBytes">The cap that applied.</param>
/// <param name="NonJsonLines">Stdout lines of a JSON-lines agent that were not JSON (kept in the transcript).</param>
public sealed record TaskOutput(long StoredBytes, long DroppedBytes, long MaxBytes, int NonJsonLines);

/// <summary>Why a task did not succeed, or why a request was refused.</summary>
/// <param name="Code">
/// <c>agent_error</c>, <c>timeout</c>, <c>stall</c>, <c>cancelled</c>, <c>result_lost</c>, <c>spawn_failed</c>,
/// <c>memory_limit</c>, <c>pids_limit</c>, <c>storage_full</c>, <c>interrupted</c>.
/// </param>
/// <param name="Message">For people.</param>
public sealed record TaskError(string Code, string Message);

/// <summary>A task at a glance, as the live feed (<c>GET /v1/events</c>) tells it: the record without its result, usage and process facts.</summary>
/// <param name="Id">The task id.</param>
/// <param name="Status">Where it is.</param>
/// <param name="Agent">The agent.</param>
/// <param name="CreatedAt">When it was accepted.</param>
/// <param name="StartedAt">When its process started.</param>
/// <param name="EndedAt">When it ended.</param>
/// <param name="QueueReason">Why it waits, when it does.</param>
/// <param name="ErrorCode">Why it did not succeed.</param>
/// <param name="CostUsd">Its cost, when the agent reported one.</param>
/// <param name="Uid">The uid it ran as, when it had its own.</param>
/// <param name="Node">The fleet node running or that ran it (none on a single server).</param>
public sealed record TaskSummary(string Id, TaskState Status, string Agent, DateTimeOffset CreatedAt, DateTimeOffset? StartedAt, DateTimeOffset? EndedAt,
    string? QueueReason, string? ErrorCode, double? CostUsd, int? Uid, string? Node = null)
{
    /// <summary>The summary of a record.</summary>
    public static TaskSummary From(TaskRecord r) => new(r.Id, r.Status, r.Agent, r.CreatedAt, r.StartedAt, r.EndedAt, r.QueueReason, r.Error?.Code, r.CostUsd, r.Uid, r.Node);
}

/// <summary>How many tasks there are in each status (<c>GET /v1/stats</c>).</summary>
/// <param name="Counts">Tasks by status, over the whole history kept.</param>
public sealed record TaskStats(Dictionary<TaskState, long> Counts);

/// <summary>A task's live processes, as <c>GET /v1/tasks/{id}/processes</c> found them.</summary>
/// <param name="Running">Whether the task's tree is running.</param>
/// <param name="Processes">Each live process of the tree (none once it has ended).</param>
public sealed record ProcessLedger(bool Running, List<LiveProcess> Processes);

/// <summary>A page of tasks, newest first.</summary>
/// <param name="Items">The tasks.</param>
/// <param name="NextCursor">Pass as <c>cursor</c> for the next page; <c>null</c> on the last.</param>
public sealed record TaskPage(List<TaskRecord> Items, string? NextCursor);

/// <summary>Where a webhook delivery is.</summary>
public enum WebhookDeliveryState
{
    /// <summary>Waiting for its event (a task's end).</summary>
    Waiting,

    /// <summary>Its event happened: being sent, or waiting for its next attempt.</summary>
    Pending,

    /// <summary>The receiver answered 2xx.</summary>
    Delivered,

    /// <summary>Given up: no 2xx within <c>Corral:Webhooks:MaxAttempts</c> attempts or <c>Corral:Webhooks:MaxAgeSeconds</c>.</summary>
    Failed,
}

/// <summary>One webhook delivery of a task, as <c>GET /v1/tasks/{id}/webhooks</c> shows it (never its body).</summary>
/// <param name="Id">The <c>webhook-id</c> header: the same on every attempt.</param>
/// <param name="Url">Where it goes.</param>
/// <param name="Event"><c>task.status</c> or <c>task.ended</c>.</param>
/// <param name="State">Where it is.</param>
/// <param name="Attempts">Attempts made so far.</param>
/// <param name="LastStatus">The HTTP status of the last attempt, when there was an answer.</param>
/// <param name="LastError">Why the last attempt did not deliver, when it did not.</param>
/// <param name="CreatedAt">When it was recorded.</param>
/// <param name="NextAttemptAt">When the next attempt is due (pending only).</param>
/// <param name="DeliveredAt">When the receiver took it.</param>
public sealed record WebhookDelivery(string Id, string Url, string Event, WebhookDeliveryState State, int Attempts, int? LastStatus, string? LastError,
    DateTimeOffset CreatedAt, DateTimeOffset? NextAttemptAt, DateTimeOffset? DeliveredAt);

/// <summary>A task's webhook deliveries, oldest first.</summary>
/// <param name="Items">The deliveries.</param>
public sealed record WebhookDeliveries(List<WebhookDelivery> Items);
