using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Scheduling;

/// <summary>A bounded pool with a bounded queue (429 beyond it), and one running task per Claude session (409).</summary>
public sealed class ConcurrencyTests : IAsyncLifetime
{
    private TestServer _server = null!;

    public async ValueTask InitializeAsync() => _server = await TestServer.StartAsync(s =>
    {
        s["Corral:MaxConcurrentTasks"] = "1";
        s["Corral:MaxQueuedTasks"] = "1";
        s["Corral:RetryAfterSeconds"] = "7";
    });

    public async ValueTask DisposeAsync() => await _server.DisposeAsync();

    [Fact(Timeout = 120_000)]
    public async Task Beyond_the_pool_and_the_queue_is_429_and_the_queue_drains_in_order()
    {
        var http = _server.Http;
        var a = await http.ClaudeAsync("slow", wait: null);
        await http.ReadEventsAsync(a.Id!, stopAfter: 3); // running
        var b = await http.ClaudeAsync("hello", wait: null);
        Assert.Equal(HttpStatusCode.Accepted, b.Status);
        Assert.Equal("queued", (await http.GetTaskAsync(b.Id!)).TaskStatus);

        var c = await http.ClaudeAsync("hello", wait: 10);
        Assert.Equal(HttpStatusCode.TooManyRequests, c.Status);
        Assert.Equal("busy", c.Body!["code"]!.GetValue<string>());
        Assert.Equal("https://www.rfc-editor.org/rfc/rfc6585#section-4", c.Body["type"]!.GetValue<string>());
        Assert.Equal(TimeSpan.FromSeconds(7), c.Message.Headers.RetryAfter!.Delta);

        // The running one ends; the queued one takes its slot and runs to success.
        Assert.Equal(HttpStatusCode.Accepted, (await http.CancelAsync(a.Id!)).Status);
        Assert.Equal("cancelled", (await http.WaitForEndAsync(a.Id!))["status"]!.GetValue<string>());
        Assert.Equal("succeeded", (await http.WaitForEndAsync(b.Id!))["status"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await http.ClaudeAsync("hello")).Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_queued_task_can_be_cancelled_without_ever_running()
    {
        var http = _server.Http;
        var a = await http.ClaudeAsync("slow", wait: null);
        var b = await http.ClaudeAsync("hello", wait: null);
        Assert.Equal("queued", (await http.GetTaskAsync(b.Id!)).TaskStatus);
        var cancel = await http.CancelAsync(b.Id!);
        Assert.Equal(HttpStatusCode.OK, cancel.Status);
        Assert.Equal("cancelled", cancel.TaskStatus);
        Assert.Null(cancel.Body!["startedAt"]);
        var events = await http.ReadEventsAsync(b.Id!);
        Assert.Equal(["task.status", "task.status", "task.result", "task.end"], events.Select(e => e.Name));
        await http.CancelAsync(a.Id!);
        await http.WaitForEndAsync(a.Id!);
    }
}

/// <summary>One running task per session.</summary>
public sealed class SessionTests(SharedServer shared) : IClassFixture<SharedServer>
{
    [Fact(Timeout = 120_000)]
    public async Task A_second_task_on_a_busy_session_is_409_until_the_first_ends()
    {
        var http = shared.Server.Http;
        string session = "sess-" + Guid.NewGuid();
        var first = await http.CreateAsync(new { agent = "claude-code", prompt = "slow", resumeSessionId = session });
        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        Assert.Equal(session, first.Body!["sessionId"]!.GetValue<string>());

        var second = await http.CreateAsync(new { agent = "claude-code", prompt = "hello", resumeSessionId = session }, wait: 30);
        Assert.Equal(HttpStatusCode.Conflict, second.Status);
        Assert.Equal("session_busy", second.Body!["code"]!.GetValue<string>());

        await http.CancelAsync(first.Id!);
        await http.WaitForEndAsync(first.Id!);
        var third = await http.CreateAsync(new { agent = "claude-code", prompt = "hello", resumeSessionId = session }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, third.Status);
        var transcript = await http.GetStringAsync($"/v1/tasks/{third.Id}/transcript");
        Assert.Contains("--resume=" + session, transcript);
    }
}
