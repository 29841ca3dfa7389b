using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Retention;

/// <summary>Nothing is kept forever: finished tasks expire, and one can be deleted on request.</summary>
public sealed class RetentionTests
{
    [Fact(Timeout = 120_000)]
    public async Task Delete_removes_a_finished_task_with_its_files_and_refuses_a_running_one()
    {
        await using var server = await TestServer.StartAsync();
        var running = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } });
        await server.Http.WaitForAsync(running.Id!, t => t["status"]!.GetValue<string>() == "running");
        var busy = await server.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{running.Id}");
        Assert.Equal(HttpStatusCode.Conflict, busy.Status);
        Assert.Equal("task_active", busy.Body!["code"]!.GetValue<string>());
        await server.Http.CancelAsync(running.Id!);
        await server.Http.WaitForEndAsync(running.Id!);

        string dir = Path.Combine(server.DataDirectory, "tasks", running.Id!);
        Assert.True(Directory.Exists(dir));
        Assert.Equal(HttpStatusCode.NoContent, (await server.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{running.Id}")).Status);
        Assert.False(Directory.Exists(dir));
        Assert.Equal(HttpStatusCode.NotFound, (await server.Http.GetTaskAsync(running.Id!)).Status);
        var again = await server.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{running.Id}");
        Assert.Equal(HttpStatusCode.NotFound, again.Status);
        Assert.Equal("not_found", again.Body!["code"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Of_concurrent_deletes_of_one_task_exactly_one_answers_204_and_the_rest_404()
    {
        await using var server = await TestServer.StartAsync();
        // A few dozen directories make the file removal slow enough for the deletes to overlap.
        var done = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "mkdir -p d{1..40}/e{1..5}" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, done.Status);

        var answers = await Task.WhenAll(Enumerable.Range(0, 10).Select(_ => server.Http.SendAsync(HttpMethod.Delete, $"/v1/tasks/{done.Id}")));

        Assert.Single(answers, a => a.Status == HttpStatusCode.NoContent);
        Assert.All(answers.Where(a => a.Status != HttpStatusCode.NoContent), a => Assert.Equal(HttpStatusCode.NotFound, a.Status));
        Assert.False(Directory.Exists(Path.Combine(server.DataDirectory, "tasks", done.Id!)));
    }

    [Fact(Timeout = 120_000)]
    public async Task Finished_tasks_older_than_the_retention_are_deleted_by_the_background_sweep()
    {
        await using var server = await TestServer.StartAsync(s =>
        {
            s["Corral:RetentionDays"] = (3.0 / 86400).ToString(System.Globalization.CultureInfo.InvariantCulture); // 3 s
            s["Corral:RetentionSweepMinutes"] = "0.01";
        });
        var done = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "old" } }, wait: 30);
        var running = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } });
        Assert.Equal(HttpStatusCode.OK, done.Status);
        string dir = Path.Combine(server.DataDirectory, "tasks", done.Id!);
        await Proc.WaitForAsync(async () => (await server.Http.GetTaskAsync(done.Id!)).Status == HttpStatusCode.NotFound, TimeSpan.FromSeconds(60), "the expired task to be deleted");
        Assert.False(Directory.Exists(dir));
        Assert.Equal("running", (await server.Http.GetTaskAsync(running.Id!)).TaskStatus); // a running task never expires
        await server.Http.CancelAsync(running.Id!);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_retention_of_zero_keeps_everything()
    {
        await using var server = await TestServer.StartAsync(s =>
        {
            s["Corral:RetentionDays"] = "0";
            s["Corral:RetentionSweepMinutes"] = "0.01";
        });
        var done = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "kept" } }, wait: 30);
        await Task.Delay(2000, TestContext.Current.CancellationToken); // several sweep periods, were there a sweep
        Assert.Equal(HttpStatusCode.OK, (await server.Http.GetTaskAsync(done.Id!)).Status);
    }
}
