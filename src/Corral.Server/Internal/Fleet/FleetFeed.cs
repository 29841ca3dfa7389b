using System.Text.Json;
using System.Threading.Channels;
using Corral.Server.Api;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Postgres;
using Corral.Server.Internal.Streaming;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Corral.Server.Internal.Fleet;

/// <summary>
/// Makes <c>GET /v1/events</c> fleet-wide: what this node sees (a task accepted here, started or ended here) is told to
/// the other nodes through a notification, and what they see is published to this node's subscribers. Like the local
/// feed it is live only and lossy under pressure: an item that cannot be sent is dropped, never waited for.
/// </summary>
internal sealed class FleetFeed : BackgroundService, ITaskObserver
{
    /// <summary>Below PostgreSQL's 8,000-byte limit for a notification payload.</summary>
    private const int MaxPayload = 7_900;

    private readonly PostgresTaskStore _store;
    private readonly TaskFeed _feed;
    private readonly ILogger<FleetFeed> _logger;
    private readonly string _node;
    // One sender, in order: a task's accepted, started and ended reach the other nodes in that order.
    private readonly Channel<string> _outbox = Channel.CreateBounded<string>(new BoundedChannelOptions(1024) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });

    public FleetFeed(FleetNode node, TaskFeed feed, ILogger<FleetFeed> logger)
    {
        (_store, _feed, _logger, _node) = (node.Store, feed, logger, node.Node);
        node.Notifications.FeedItem += Received;
    }

    public void Accepted(TaskRecord record) => Send("task.accepted", record);

    public void Updated(TaskRecord record) => Send("task.updated", record);

    public void Started(TaskRecord record) => Send("task.started", record);

    public void Ended(TaskRecord record) => Send("task.ended", record);

    private void Send(string name, TaskRecord record)
    {
        string payload = JsonSerializer.Serialize(new Relayed(_node, name, TaskSummary.From(record)), ApiJson.Options);
        if (payload.Length <= MaxPayload)
            _outbox.Writer.TryWrite(payload);
    }

    private void Received(string payload)
    {
        if (PostgresNotifications.Read<Relayed>(payload) is { Node: { } node, Name: { } name, Task: { } task } && node != _node)
            _feed.Publish(new FeedItem(name, task));
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            await foreach (string payload in _outbox.Reader.ReadAllAsync(stoppingToken).ConfigureAwait(false))
            {
                try
                {
                    await _store.NotifyAsync(PostgresNotifications.Feed, payload).ConfigureAwait(false);
                }
                catch (Exception e) when (e is StoreException or OperationCanceledException or Npgsql.NpgsqlException)
                {
                    _logger.LogDebug("A feed item was not relayed to the fleet: {Message}", e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private sealed record Relayed(string Node, string Name, TaskSummary Task);
}
