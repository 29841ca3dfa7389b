using System.Collections.Concurrent;
using Corral.Client.Events;
using Corral.Client.Tests.Support;

namespace Corral.Client.Tests;

/// <summary>An event stream reconnects by itself: every event once, in order, ending with task.end.</summary>
public sealed class EventStreamTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task A_stream_survives_a_server_kill_and_restart_without_a_gap_or_a_duplicate()
    {
        await using var server = await ClientServer.StartAsync();
        using var client = server.Client(o =>
        {
            o.RetryDelay = TimeSpan.FromMilliseconds(100);
            o.CircuitBreakDuration = TimeSpan.FromSeconds(0.5);
            o.MaxCircuitBreakDuration = TimeSpan.FromSeconds(1);
        });
        var task = await client.CreateTaskAsync(Commands.Bash("for i in $(seq 1 400); do echo line$i; sleep 0.05; done"), Token);

        var seen = new ConcurrentQueue<CorralEvent>();
        var follow = client.FollowAsync(task.Id, seen);

        await Proc.WaitForAsync(() => seen.OfType<OutputEvent>().Count() >= 10, TimeSpan.FromSeconds(30), "ten output lines");
        server.Kill(); // kill -9 in the middle of the task and of the stream
        int beforeRestart = seen.Count;
        await server.RestartAsync(); // same data directory, same port: recovery ends the task as interrupted
        await follow.WaitAsync(TimeSpan.FromSeconds(60), Token);

        var events = seen.ToList();
        Assert.True(events.Count > beforeRestart, "nothing came after the restart");
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long?)i), events.Select(e => e.Id)); // 1, 2, 3, … : no gap, no duplicate
        var end = Assert.IsType<TaskEndEvent>(events[^1]);
        Assert.Equal(CorralTaskStatus.Interrupted, end.Status);
        Assert.Single(events, e => e is TaskEndEvent);
        var lines = events.OfType<OutputEvent>().Select(o => o.Text).ToList();
        Assert.Equal(Enumerable.Range(1, lines.Count).Select(i => $"line{i}"), lines);

        // The server agrees: a fresh stream replays the same events.
        Assert.Equal(events.Select(e => e.Id), (await client.CollectAsync(task.Id)).Select(e => e.Id));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_stream_reconnects_after_a_dropped_connection_and_after_a_silent_one()
    {
        await using var server = await ClientServer.StartAsync();
        using var proxy = new LoopbackProxy(server.Address);
        using var client = new CorralClient(new CorralClientOptions { BaseAddress = proxy.Address, StreamIdleTimeout = TimeSpan.FromSeconds(3) });
        var task = await client.CreateTaskAsync(Commands.Bash("for i in $(seq 1 100); do echo line$i; sleep 0.1; done"), Token);

        var seen = new ConcurrentQueue<CorralEvent>();
        var follow = client.FollowAsync(task.Id, seen);

        await Proc.WaitForAsync(() => seen.OfType<OutputEvent>().Count() >= 5, TimeSpan.FromSeconds(30), "five lines");
        int connections = proxy.Accepted;
        proxy.DropAll(); // a reset in the middle of the stream
        await Proc.WaitForAsync(() => proxy.Accepted > connections && seen.OfType<OutputEvent>().Count() >= 15, TimeSpan.FromSeconds(30), "the stream to come back");
        connections = proxy.Accepted;
        proxy.SilenceOpenConnections(); // the connection stays up but nothing arrives, not even the server's keep-alives
        await follow.WaitAsync(TimeSpan.FromSeconds(60), Token);

        Assert.True(proxy.Accepted > connections, "the silent connection was not replaced");
        var events = seen.ToList();
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long?)i), events.Select(e => e.Id));
        Assert.Equal(Enumerable.Range(1, 100).Select(i => $"line{i}"), events.OfType<OutputEvent>().Select(o => o.Text));
        Assert.Equal(CorralTaskStatus.Succeeded, Assert.IsType<TaskEndEvent>(events[^1]).Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_stream_outlives_the_attempt_timeout_on_one_connection()
    {
        await using var server = await ClientServer.StartAsync();
        using var creator = server.Client();
        var task = await creator.CreateTaskAsync(Commands.Bash("for i in $(seq 1 10); do echo $i; sleep 0.5; done"), Token);
        using var logged = new LoggedClient(server, o => o.RequestTimeout = TimeSpan.FromSeconds(2));
        var events = await logged.Client.CollectAsync(task.Id);
        Assert.Equal(Enumerable.Range(1, 10).Select(i => $"{i}"), events.OfType<OutputEvent>().Select(o => o.Text));
        Assert.Single(logged.Log.For($"/v1/tasks/{task.Id}/events")); // 5 s on one connection: the timeout covers the headers, not the stream
    }

    [Fact(Timeout = 120_000)]
    public async Task A_stream_gives_up_when_the_server_stays_away()
    {
        await using var server = await ClientServer.StartAsync();
        using var client = server.Client(o =>
        {
            o.MaxRetryAttempts = 0;
            o.StreamReconnectWindow = TimeSpan.FromSeconds(2);
            o.CircuitBreakDuration = TimeSpan.FromSeconds(0.5);
        });
        var task = await client.CreateTaskAsync(Commands.Bash("sleep 60"), Token);
        server.Kill();
        var e = await Assert.ThrowsAsync<CorralUnreachableException>(async () =>
        {
            await foreach (var _ in client.StreamEventsAsync(task.Id, cancellationToken: Token))
            {
            }
        });
        Assert.NotNull(e.InnerException);
    }
}
