using System.Text.Json.Nodes;
using Corral.Agents;

namespace Corral.Server.Internal.Admission;

/// <summary>An admitted task: everything the scheduler and the runner need, decided before anything exists.</summary>
internal sealed record TaskPlan
{
    public required string Id { get; init; }

    /// <summary>The agent's name.</summary>
    public required string Agent { get; init; }

    public required IAgentAdapter Adapter { get; init; }

    /// <summary>What the adapter is asked to run (working directory resolved, not yet created).</summary>
    public required AgentRequest Request { get; init; }

    /// <summary>Whether the working directory is Corral's to create (the default, or a relative one).</summary>
    public required bool CreateWorkdir { get; init; }

    public required TimeSpan? Timeout { get; init; }

    public required TimeSpan? StallTimeout { get; init; }

    public required long MaxOutputBytes { get; init; }

    /// <summary>The tree's resource limits (the request's, else the server's defaults); <c>null</c> for none.</summary>
    public Corral.Processes.ResourceLimits? Resources { get; init; }

    /// <summary>The session this task holds while queued or running (its <c>resumeSessionId</c>).</summary>
    public string? SessionKey { get; init; }

    /// <summary>The session id the record shows from the start.</summary>
    public string? SessionId { get; init; }

    public string? IdempotencyKey { get; init; }

    public JsonObject? Metadata { get; init; }

    /// <summary>The task's own webhook, checked against the allowed prefixes, events filled in.</summary>
    public Api.TaskWebhook? Webhook { get; init; }

    /// <summary>The request as received, kept so that a restart can queue the task again.</summary>
    public required string RequestJson { get; init; }

    /// <summary>The request's hash: the same idempotency key with another body is a conflict.</summary>
    public required string RequestHash { get; init; }

    /// <summary>The task's secret values, to be masked in everything kept or sent; <c>null</c> when it has none.</summary>
    public Secrets.SecretMask? Mask { get; init; }

    /// <summary>
    /// Whether the stored request lacks what the task runs with: secrets of its own, or a secret's value (the
    /// operator's too) that the mask replaced in its arguments or environment. No restart and no other node can bring
    /// those back, so only this process runs it.
    /// </summary>
    public bool StoredRequestIncomplete { get; init; }
}
