namespace Corral.Client;

/// <summary>One webhook delivery of a task, as the server reports it (<c>GET /v1/tasks/{id}/webhooks</c>).</summary>
/// <param name="Id">The <c>webhook-id</c>: the same on every attempt.</param>
/// <param name="Url">Where it goes.</param>
/// <param name="Event"><c>task.status</c> or <c>task.ended</c>.</param>
/// <param name="State"><c>waiting</c> (for the task's end), <c>pending</c>, <c>delivered</c> or <c>failed</c>.</param>
/// <param name="Attempts">Attempts made so far.</param>
/// <param name="LastStatus">The HTTP status of the last attempt, when there was an answer.</param>
/// <param name="LastError">Why the last attempt did not deliver.</param>
/// <param name="CreatedAt">When it was recorded.</param>
/// <param name="NextAttemptAt">When the next attempt is due (pending only).</param>
/// <param name="DeliveredAt">When the receiver took it.</param>
public sealed record WebhookDelivery(string Id, string Url, string Event, string State, int Attempts, int? LastStatus, string? LastError,
    DateTimeOffset CreatedAt, DateTimeOffset? NextAttemptAt, DateTimeOffset? DeliveredAt)
{
    /// <summary>Whether the receiver took it (answered 2xx).</summary>
    public bool IsDelivered => State == "delivered";
}
