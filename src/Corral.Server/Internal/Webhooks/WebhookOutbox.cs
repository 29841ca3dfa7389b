using System.Text.Json;
using System.Threading.Channels;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Scheduling;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Webhooks;

/// <summary>
/// Turns what happens to tasks into webhook deliveries: on acceptance one delivery per webhook (the task's and each
/// default) waits for the end; at the start a <c>task.status</c> delivery for the webhooks that asked for one; at the
/// end the waiting ones become pending with the final record. Observers must not hold up the task, so this only
/// queues; <see cref="WebhookDispatcher"/> writes the queue to the store in order.
/// </summary>
internal sealed class WebhookOutbox(IOptions<CorralOptions> options, TimeProvider time) : ITaskObserver
{
    private readonly WebhookOptions _options = options.Value.Webhooks;
    private readonly Channel<OutboxItem> _items = Channel.CreateUnbounded<OutboxItem>(new UnboundedChannelOptions { SingleReader = true });

    /// <summary>Whether the server sends webhooks at all (it has a secret).</summary>
    public bool Enabled => _options.Secret is { Length: > 0 };

    /// <summary>What is to be written, in the order it happened.</summary>
    public ChannelReader<OutboxItem> Items => _items.Reader;

    public void Accepted(TaskRecord record)
    {
        var targets = Targets(record);
        if (targets.Count == 0)
            return;
        var now = time.GetUtcNow();
        _items.Writer.TryWrite(new OutboxItem.Add(Deliveries(targets, record.Id, WebhookEvents.Ended, now, payload: null)));
    }

    public void Started(TaskRecord record)
    {
        var targets = Targets(record).Where(t => t.Events.Contains(TaskWebhook.StatusEvent)).ToList();
        if (targets.Count == 0)
            return;
        var now = time.GetUtcNow();
        string payload = Payload(WebhookEvents.Status, now, record);
        _items.Writer.TryWrite(new OutboxItem.Add(Deliveries(targets, record.Id, WebhookEvents.Status, now, payload)));
    }

    public void Ended(TaskRecord record)
    {
        var targets = Targets(record);
        if (targets.Count == 0)
            return;
        var now = time.GetUtcNow();
        string payload = Payload(WebhookEvents.Ended, now, record);
        // The deliveries themselves too, in case their waiting rows were never written (a crash just after the task's row).
        _items.Writer.TryWrite(new OutboxItem.End(record.Id, payload, now, Deliveries(targets, record.Id, WebhookEvents.Ended, now, payload)));
    }

    /// <summary>A task's delivery of <paramref name="event"/> to each target (waiting for the end when <paramref name="payload"/> is <c>null</c>).</summary>
    private static List<NewDelivery> Deliveries(List<(string Url, List<string> Events)> targets, string taskId, string @event, DateTimeOffset now, string? payload) =>
        [.. targets.Select(t => new NewDelivery(DeliveryId(taskId, t.Url, @event), taskId, t.Url, @event, now, payload))];

    /// <summary>The body of a delivery: <c>{"type", "timestamp", "data"}</c> with the record as the API shows it.</summary>
    public static string Payload(string type, DateTimeOffset at, TaskRecord record) =>
        JsonSerializer.Serialize(new WebhookPayload(type, at, record), ApiJson.Options);

    /// <summary>
    /// The <c>webhook-id</c> of a task's delivery of an event to a URL: the same wherever and however often it is
    /// worked out, so the rows a node writes at acceptance and those another writes at the end are one delivery.
    /// </summary>
    public static string DeliveryId(string taskId, string url, string @event) =>
        "msg_" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{taskId}\n{@event}\n{url}")))[..32];

    /// <summary>Where a task's deliveries go: its own webhook, then the defaults.</summary>
    private List<(string Url, List<string> Events)> Targets(TaskRecord record)
    {
        var targets = new List<(string, List<string>)>();
        if (!Enabled)
            return targets;
        if (record.Webhook is { Url: { } url } own)
            targets.Add((url, own.Events ?? [TaskWebhook.EndEvent]));
        foreach (var d in _options.Defaults)
            targets.Add((d.Url!, WebhookRules.Events(d.Events).Events ?? [TaskWebhook.EndEvent]));
        return targets;
    }

    private sealed record WebhookPayload(string Type, DateTimeOffset Timestamp, TaskRecord Data);
}

/// <summary>A write the outbox queued.</summary>
internal abstract record OutboxItem
{
    private OutboxItem()
    {
    }

    /// <summary>New deliveries.</summary>
    public sealed record Add(IReadOnlyList<NewDelivery> Deliveries) : OutboxItem;

    /// <summary>A task ended: its waiting deliveries become pending with <paramref name="Payload"/>, and those never written are added pending.</summary>
    public sealed record End(string TaskId, string Payload, DateTimeOffset At, IReadOnlyList<NewDelivery> Deliveries) : OutboxItem;
}
