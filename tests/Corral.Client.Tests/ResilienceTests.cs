using System.Diagnostics;
using System.Net;
using Corral.Client.Tests.Support;

namespace Corral.Client.Tests;

/// <summary>A server with one slot and no queue: a second task is refused with 429 and Retry-After: 1.</summary>
public sealed class OneSlotServer : IAsyncLifetime
{
    private ClientServer? _server;

    public ClientServer Server => _server!;

    public async ValueTask InitializeAsync() => _server = await ClientServer.StartAsync(settings =>
    {
        settings["Corral:MaxConcurrentTasks"] = "1";
        settings["Corral:MaxQueuedTasks"] = "0";
        settings["Corral:RetryAfterSeconds"] = "1";
    });

    public async ValueTask DisposeAsync() => await _server!.DisposeAsync();
}

/// <summary>Retries: only what is safe, after the wait the server asks for.</summary>
public sealed class RetryAfterTests(OneSlotServer oneSlot) : IClassFixture<OneSlotServer>
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task A_busy_create_with_a_key_is_retried_after_the_servers_Retry_After()
    {
        using var logged = new LoggedClient(oneSlot.Server, o => o.MaxRetryAttempts = 5);
        var holder = await logged.Client.CreateTaskAsync(Commands.Bash("sleep 1.5"), Token);

        var task = await logged.Client.CreateTaskAsync(Commands.Bash("echo next"), Token);
        Assert.NotEqual(holder.Id, task.Id);

        var posts = logged.Log.For("/v1/tasks").Where(a => a.Method == HttpMethod.Post).Skip(1).ToArray();
        Assert.True(posts.Length >= 2, $"{posts.Length} attempts");
        Assert.Equal(HttpStatusCode.TooManyRequests, posts[0].Status);
        Assert.Equal(HttpStatusCode.Accepted, posts[^1].Status);
        for (int i = 1; i < posts.Length; i++)
        {
            var waited = posts[i].SentAt - posts[i - 1].AnsweredAt!.Value;
            Assert.True(waited >= TimeSpan.FromSeconds(0.95), $"attempt {i + 1} came {waited.TotalMilliseconds:0} ms after a Retry-After of 1 s");
        }

        Assert.Equal(CorralTaskStatus.Succeeded, (await logged.Client.WaitForTaskAsync(task.Id, Commands.Wait, Token)).Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_busy_create_without_a_key_is_never_retried()
    {
        using var logged = new LoggedClient(oneSlot.Server, o => o.GenerateIdempotencyKeys = false);
        var holder = await logged.Client.CreateTaskAsync(Commands.Bash("sleep 30"), Token);
        try
        {
            var e = await Assert.ThrowsAsync<CorralRateLimitedException>(() => logged.Client.CreateTaskAsync(Commands.Bash("echo next"), Token));
            Assert.Equal(CorralErrorCodes.Busy, e.Code);
            Assert.Equal(TimeSpan.FromSeconds(1), e.RetryAfter);
            Assert.Single(logged.Log.For("/v1/tasks").Where(a => a.Method == HttpMethod.Post).Skip(1));
        }
        finally
        {
            await logged.Client.CancelTaskAsync(holder.Id, Token);
            await logged.Client.WaitForTaskAsync(holder.Id, Commands.Wait, Token);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_Retry_After_longer_than_the_client_waits_for_is_handed_to_the_caller()
    {
        using var logged = new LoggedClient(oneSlot.Server, o => o.MaxRetryAfter = TimeSpan.FromSeconds(0.5));
        var holder = await logged.Client.CreateTaskAsync(Commands.Bash("sleep 30"), Token);
        try
        {
            var e = await Assert.ThrowsAsync<CorralRateLimitedException>(() => logged.Client.CreateTaskAsync(Commands.Bash("echo next"), Token));
            Assert.Equal(TimeSpan.FromSeconds(1), e.RetryAfter);
            Assert.Single(logged.Log.For("/v1/tasks").Where(a => a.Method == HttpMethod.Post).Skip(1)); // a key, but a wait too long to take
        }
        finally
        {
            await logged.Client.CancelTaskAsync(holder.Id, Token);
            await logged.Client.WaitForTaskAsync(holder.Id, Commands.Wait, Token);
        }
    }
}

/// <summary>The breaker: it counts only connections that could not be made, and closes when the server is back.</summary>
public sealed class CircuitBreakerTests
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private static void Fast(CorralClientOptions o)
    {
        o.MaxRetryAttempts = 1;
        o.RetryDelay = TimeSpan.FromMilliseconds(50);
        o.ConnectTimeout = TimeSpan.FromSeconds(2);
        o.CircuitBreakerMinimumThroughput = 3;
        o.CircuitBreakerFailureRatio = 0.5;
        o.CircuitBreakerSamplingDuration = TimeSpan.FromSeconds(30);
        o.CircuitBreakDuration = TimeSpan.FromSeconds(1);
        o.MaxCircuitBreakDuration = TimeSpan.FromSeconds(2);
    }

    [Fact(Timeout = 120_000)]
    public async Task The_breaker_opens_on_connect_failures_and_closes_when_the_server_returns()
    {
        await using var server = await ClientServer.StartAsync();
        using var logged = new LoggedClient(server, Fast);
        var client = logged.Client;
        var task = await client.RunTaskAsync(Commands.Bash("echo before"), Commands.Wait, Token);

        server.Kill();
        var first = await Assert.ThrowsAsync<CorralUnreachableException>(() => client.GetTaskAsync(task.Id, Token));
        Assert.False(first.CircuitOpen); // it tried, twice (one retry), and could not connect
        Assert.Equal(2, logged.Log.For("/v1/tasks/" + task.Id).Count(a => a.Status is null));

        // A few more failed connections and the breaker opens: calls fail at once, without a connection attempt.
        CorralUnreachableException? open = null;
        for (int i = 0; i < 5 && open is null; i++)
        {
            var e = await Assert.ThrowsAsync<CorralUnreachableException>(() => client.GetTaskAsync(task.Id, Token));
            if (e.CircuitOpen)
                open = e;
        }

        Assert.NotNull(open);
        int attempts = logged.Log.Attempts.Count;
        var clock = Stopwatch.StartNew();
        var refused = await Assert.ThrowsAsync<CorralUnreachableException>(() => client.GetTaskAsync(task.Id, Token));
        Assert.True(refused.CircuitOpen);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"an open circuit took {clock.Elapsed} to refuse");
        Assert.Equal(attempts, logged.Log.Attempts.Count);
        Assert.False(await client.IsAliveAsync(Token));

        // Back on the same port: once the break is over, a probe goes through and the circuit closes.
        await server.RestartAsync();
        await Proc.WaitForAsync(async () =>
        {
            try
            {
                return (await client.GetTaskAsync(task.Id, Token)).Status == CorralTaskStatus.Succeeded;
            }
            catch (CorralUnreachableException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(30), "the circuit to close");
        for (int i = 0; i < 5; i++)
            Assert.Equal(task.Id, (await client.GetTaskAsync(task.Id, Token)).Id);
    }

    [Fact(Timeout = 120_000)]
    public async Task Error_answers_do_not_open_the_breaker()
    {
        await using var server = await ClientServer.StartAsync();
        using var client = server.Client(Fast);
        // Any HTTP answer, even an error, means the server is alive.
        for (int i = 0; i < 20; i++)
            await Assert.ThrowsAsync<CorralNotFoundException>(() => client.GetTaskAsync("tsk_missing", Token));
        Assert.True(await client.IsAliveAsync(Token));
    }
}
