using System.Threading.Channels;
using Corral.Server.Api;
using Corral.Server.Internal.Scheduling;

namespace Corral.Server.Internal.Streaming;

/// <summary>
/// The server-wide live feed (<c>GET /v1/events</c>): a summary of every task as it is accepted, waits, starts and
/// ends. Each subscriber has a bounded buffer; one that falls behind loses its oldest items, never slows the server.
/// </summary>
internal sealed class TaskFeed : ITaskObserver
{
    private const int Capacity = 1024;

    private readonly Lock _gate = new();
    private readonly List<Channel<FeedItem>> _subscribers = [];

    /// <summary>A subscription; dispose it to leave.</summary>
    public Subscription Subscribe()
    {
        var channel = Channel.CreateBounded<FeedItem>(new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        lock (_gate)
            _subscribers.Add(channel);
        return new Subscription(this, channel);
    }

    public void Accepted(TaskRecord record) => Publish("task.accepted", record);

    public void Updated(TaskRecord record) => Publish("task.updated", record);

    public void Started(TaskRecord record) => Publish("task.started", record);

    public void Ended(TaskRecord record) => Publish("task.ended", record);

    private void Publish(string name, TaskRecord record) => Publish(new FeedItem(name, TaskSummary.From(record)));

    /// <summary>Tells every subscriber of an item; in a fleet, also what other nodes saw.</summary>
    public void Publish(FeedItem item)
    {
        lock (_gate)
        {
            foreach (var subscriber in _subscribers)
                subscriber.Writer.TryWrite(item);
        }
    }

    private void Leave(Channel<FeedItem> channel)
    {
        lock (_gate)
            _subscribers.Remove(channel);
        channel.Writer.TryComplete();
    }

    /// <summary>One subscriber's items, in order.</summary>
    internal sealed class Subscription(TaskFeed feed, Channel<FeedItem> channel) : IDisposable
    {
        public ChannelReader<FeedItem> Items => channel.Reader;

        public void Dispose() => feed.Leave(channel);
    }
}

/// <summary>An item of the feed: what happened (the SSE event name) and the task as it is now.</summary>
internal readonly record struct FeedItem(string Name, TaskSummary Task);
