using Corral.Server.Hosting;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Storage;

/// <summary>A data directory serves one server at a time, and a server that dies leaves it free for the next.</summary>
public sealed class DataDirectoryLockTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_second_server_on_a_data_directory_in_use_is_refused_and_one_after_a_kill_minus_9_starts()
    {
        using var scratch = new Scratch("corral-data-lock-");
        string data = Path.Combine(scratch.Path, "data");
        var first = await ServerProcess.StartAsync(data);
        try
        {
            var refused = await Assert.ThrowsAsync<ServerConfigurationException>(() => TestServer.StartAsync(dataDirectory: data));
            Assert.Contains("in use by another Corral server", refused.Message, StringComparison.Ordinal);

            // The first goes on serving, untouched.
            var r = await first.Http.PostAsync("/v1/tasks?wait=30", Json(new { agent = "command", command = new[] { "true" } }));
            Assert.Equal(System.Net.HttpStatusCode.OK, r.StatusCode);
        }
        finally
        {
            first.Kill();
        }

        // The kernel dropped the dead server's lock: no stale file stops the next start.
        await using var next = await TestServer.StartAsync(dataDirectory: data);
        Assert.Equal("succeeded", (await next.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30)).TaskStatus);
    }

    private static StringContent Json(object body) => new(System.Text.Json.JsonSerializer.Serialize(body), System.Text.Encoding.UTF8, "application/json");
}
