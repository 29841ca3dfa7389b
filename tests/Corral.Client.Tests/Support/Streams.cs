using System.Collections.Concurrent;
using Corral.Client.Events;

namespace Corral.Client.Tests.Support;

/// <summary>Following a task's events from a test.</summary>
internal static class Streams
{
    /// <summary>Follows the stream in the background into <paramref name="seen"/>; the task ends with the stream.</summary>
    public static Task FollowAsync(this CorralClient client, string id, ConcurrentQueue<CorralEvent> seen) => Task.Run(async () =>
    {
        await foreach (var e in client.StreamEventsAsync(id, cancellationToken: TestContext.Current.CancellationToken))
            seen.Enqueue(e);
    }, TestContext.Current.CancellationToken);

    /// <summary>Every event after <paramref name="after"/>, to the end of the stream.</summary>
    public static async Task<List<CorralEvent>> CollectAsync(this CorralClient client, string id, long after = 0)
    {
        var events = new List<CorralEvent>();
        await foreach (var e in client.StreamEventsAsync(id, after, TestContext.Current.CancellationToken))
            events.Add(e);
        return events;
    }
}
