using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Corral.Client;

/// <summary>
/// A task's record: what was asked, where it is, and how it ended. The server's record has more than is modelled
/// here (and may gain fields): <see cref="Raw"/> is the whole JSON object as it came.
/// </summary>
public sealed record CorralTask
{
    /// <summary>The task id (<c>tsk_…</c>).</summary>
    public required string Id { get; init; }

    /// <summary>Where it is.</summary>
    public CorralTaskStatus Status { get; init; }

    /// <summary>The agent.</summary>
    public string? Agent { get; init; }

    /// <summary>The agent session (Claude), known from the start for a new session.</summary>
    public string? SessionId { get; init; }

    /// <summary>The working directory on the server.</summary>
    public string? Workdir { get; init; }

    /// <summary>When the server accepted it.</summary>
    public DateTimeOffset CreatedAt { get; init; }

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
    public TaskProcess? Process { get; init; }

    /// <summary>What was kept of the agent's output.</summary>
    public TaskOutputSummary? Output { get; init; }

    /// <summary>Why it did not succeed.</summary>
    public TaskError? Error { get; init; }

    /// <summary>The idempotency key it was created with.</summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>The caller's metadata.</summary>
    public JsonObject? Metadata { get; init; }

    /// <summary>The task's own webhook, as the server admitted it.</summary>
    public TaskWebhook? Webhook { get; init; }

    /// <summary>The record as the server sent it, with every field (also those this client does not model).</summary>
    [JsonIgnore]
    public JsonElement Raw { get; init; }

    /// <summary>Whether the status is final: the task will not change any more.</summary>
    [JsonIgnore]
    public bool IsTerminal => Status switch
    {
        CorralTaskStatus.Queued or CorralTaskStatus.Running => false,
        CorralTaskStatus.Unknown => EndedAt is not null,
        _ => true,
    };
}
