using System.Diagnostics;
using System.Net;
using Corral.Cli.Tests.Support;
using Corral.Processes;

namespace Corral.Cli.Tests;

/// <summary><c>corral serve</c> starts the HTTP runtime, answers on loopback, and stops cleanly on SIGTERM.</summary>
public sealed class ServeTests
{
    [Fact(Timeout = 120_000)]
    public async Task Serves_on_loopback_and_stops_cleanly_on_SIGTERM()
    {
        using var scratch = new Scratch("corral-cli-test-");
        var clock = Stopwatch.StartNew();
        await using var tree = CorralCli.Start(["serve", "--urls", "http://127.0.0.1:0", "--data", scratch.File("data")]);

        // The server prints "Corral listening on URL" for each address once it is up.
        string? url = null;
        await using (var lines = tree.ReadLinesAsync(TestContext.Current.CancellationToken).GetAsyncEnumerator(TestContext.Current.CancellationToken))
        {
            while (url is null && await lines.MoveNextAsync())
            {
                if (lines.Current.Text.StartsWith("Corral listening on ", StringComparison.Ordinal))
                    url = lines.Current.Text["Corral listening on ".Length..];
            }
        }

        Assert.NotNull(url);
        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(30) };
        var health = await http.GetAsync("/healthz", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        var task = await http.PostAsync("/v1/tasks?wait=30",
            new StringContent("""{"agent":"command","command":["/bin/echo","hello"]}""", System.Text.Encoding.UTF8, "application/json"),
            TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, task.StatusCode);
        Assert.Contains("\"status\":\"succeeded\"", await task.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.True(File.Exists(scratch.File("data/corral.db")));

        Assert.True(Proc.Signal(tree.Pid, Proc.SIGTERM));
        var outcome = await tree.Completion;
        Assert.Equal(ExitReason.Exited, outcome.Reason);
        Assert.Equal(0, outcome.ExitCode);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60));
    }

    [Fact(Timeout = 120_000)]
    public async Task Refuses_a_public_address_without_a_token()
    {
        using var scratch = new Scratch("corral-cli-test-");
        var run = await CorralCli.RunAsync(["serve", "--urls", "http://0.0.0.0:0", "--data", scratch.File("data")]);
        Assert.Equal(2, run.ExitCode);
        Assert.Contains("without a token", run.StderrText);
    }
}
