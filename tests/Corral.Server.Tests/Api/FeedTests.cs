using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Api;

/// <summary>What a dashboard watches: the live feed of every task, counts by status, and the history filtered.</summary>
public sealed class FeedTests
{
    [Fact(Timeout = 120_000)]
    public async Task The_feed_tells_each_task_as_it_is_accepted_starts_and_ends()
    {
        await using var server = await TestServer.StartAsync();
        using var feed = await FeedReader.OpenAsync(server.Http);

        var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "fed" } }, wait: 30);
        var seen = await feed.ReadUntilAsync((name, _) => name == "task.ended");
        var mine = seen.Where(e => e.Data["id"]!.GetValue<string>() == r.Id).ToList();
        Assert.Equal(["task.accepted", "task.started", "task.ended"], mine.Select(e => e.Name));
        Assert.Equal("succeeded", mine[^1].Data["status"]!.GetValue<string>());
        Assert.Null(mine[^1].Data["result"]); // a summary, not the record
    }

    [Fact(Timeout = 120_000)]
    public async Task Stats_count_tasks_by_status_and_the_history_filters_by_agent_and_text()
    {
        await using var server = await TestServer.StartAsync();
        string marker = "needle-" + Guid.NewGuid().ToString("N")[..8];
        var ok = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", marker } }, wait: 30);
        var bad = await server.Http.CreateAsync(new { agent = "command", command = new[] { "false" } }, wait: 30);
        var claude = await server.Http.ClaudeAsync("hello");
        Assert.Equal(HttpStatusCode.OK, claude.Status);

        var stats = (await server.Http.SendAsync(HttpMethod.Get, "/v1/stats")).Body!["counts"]!;
        Assert.Equal(2, stats["succeeded"]!.GetValue<long>());
        Assert.Equal(1, stats["failed"]!.GetValue<long>());
        Assert.Equal(0, stats["running"]!.GetValue<long>());

        var commands = (await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks?agent=command")).Body!["items"]!.AsArray();
        Assert.Equal([bad.Id, ok.Id], commands.Select(t => t!["id"]!.GetValue<string>()));
        var found = (await server.Http.SendAsync(HttpMethod.Get, $"/v1/tasks?q={marker}")).Body!["items"]!.AsArray();
        Assert.Equal(ok.Id, Assert.Single(found)!["id"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.BadRequest, (await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks?q=" + new string('x', 201))).Status);
        // A single server is no fleet node: a node filter matches nothing.
        Assert.Empty((await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks?node=a")).Body!["items"]!.AsArray());
    }
}
