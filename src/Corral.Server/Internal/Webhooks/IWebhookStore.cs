using Corral.Server.Api;

namespace Corral.Server.Internal.Webhooks;

/// <summary>
/// Where webhook deliveries live, so that they survive a restart: SQLite on one node (a table of the task database),
/// PostgreSQL in a fleet (where a claim is a lease, so two nodes never send the same delivery at once).
/// </summary>
internal interface IWebhookStore
{
    /// <summary>Adds deliveries (waiting for their event, or pending with a payload).</summary>
    Task AddAsync(IReadOnlyList<NewDelivery> deliveries, CancellationToken cancellationToken);

    /// <summary>Makes a task's waiting deliveries pending with <paramref name="payload"/>; how many there were.</summary>
    Task<int> MarkPendingAsync(string taskId, string payload, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Gives up a task's waiting deliveries (its task is gone).</summary>
    Task AbandonAsync(string taskId, string reason, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Tasks with deliveries still waiting for their event.</summary>
    Task<IReadOnlyList<string>> WaitingTasksAsync(int limit, CancellationToken cancellationToken);

    /// <summary>
    /// Takes up to <paramref name="limit"/> pending deliveries that are due. Where several processes send (a fleet), each
    /// is held until <c>now + lease</c>: no other claim gets it meanwhile, and one whose sender died is due again when the
    /// lease runs out. The caller claims again only once the outcomes of its last claim are recorded.
    /// </summary>
    Task<IReadOnlyList<DueDelivery>> ClaimDueAsync(DateTimeOffset now, TimeSpan lease, int limit, CancellationToken cancellationToken);

    /// <summary>Records an attempt's outcome and releases the claim.</summary>
    Task RecordAttemptAsync(AttemptOutcome outcome, CancellationToken cancellationToken);

    /// <summary>When the next pending delivery is due (its attempt time or the end of its claim); <c>null</c> when none is pending.</summary>
    Task<DateTimeOffset?> NextDueAsync(CancellationToken cancellationToken);

    /// <summary>A task's deliveries, oldest first.</summary>
    Task<IReadOnlyList<WebhookDelivery>> ListAsync(string taskId, CancellationToken cancellationToken);
}

/// <summary>A delivery to add: <paramref name="Payload"/> <c>null</c> makes it wait for the task's end.</summary>
internal sealed record NewDelivery(string Id, string TaskId, string Url, string Event, DateTimeOffset CreatedAt, string? Payload);

/// <summary>A claimed delivery to send.</summary>
internal sealed record DueDelivery(string Id, string TaskId, string Url, string Payload, int Attempts, DateTimeOffset PendingSince);

/// <summary>
/// What an attempt came to: <paramref name="State"/> is <c>Delivered</c>, <c>Failed</c> (given up) or <c>Pending</c>
/// (again at <paramref name="NextAttemptAt"/>); <paramref name="Status"/> the receiver's answer, <paramref name="Error"/> why it did not deliver.
/// </summary>
internal sealed record AttemptOutcome(string Id, WebhookDeliveryState State, DateTimeOffset At, int? Status, string? Error, DateTimeOffset? NextAttemptAt);

/// <summary>The event names of deliveries.</summary>
internal static class WebhookEvents
{
    /// <summary>A task's process started.</summary>
    public const string Status = "task.status";

    /// <summary>A task reached its final record.</summary>
    public const string Ended = "task.ended";
}

/// <summary>How delivery states are stored.</summary>
internal static class WebhookStates
{
    /// <summary>The stored name of a state.</summary>
    public static string Name(WebhookDeliveryState state) => state switch
    {
        WebhookDeliveryState.Waiting => "waiting",
        WebhookDeliveryState.Pending => "pending",
        WebhookDeliveryState.Delivered => "delivered",
        _ => "failed",
    };

    /// <summary>The state of a stored name.</summary>
    public static WebhookDeliveryState Parse(string name) => name switch
    {
        "waiting" => WebhookDeliveryState.Waiting,
        "pending" => WebhookDeliveryState.Pending,
        "delivered" => WebhookDeliveryState.Delivered,
        _ => WebhookDeliveryState.Failed,
    };
}
