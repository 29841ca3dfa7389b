using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;
using Corral.Testing.FakeAnthropic;

namespace Corral.Server.Tests.Isolation;

/// <summary>
/// The real Claude Code CLI as a uid of its own: it takes <c>bypassPermissions</c> without <c>IS_SANDBOX</c> (it
/// refuses that as root), runs in its own HOME and workdir, and a later task resumes its session.
/// </summary>
public sealed class IsolatedClaudeCodeTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private FakeAnthropicServer _api = null!;

    public async ValueTask InitializeAsync()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Giving tasks uids of their own needs the server to run as root (CI runs as root).");
        string claude = ClaudeCodeKit.ExecutablePath;
        _api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        _server = await TestServer.StartAsync(s =>
        {
            s.Remove("Corral:Isolation:User"); // the default as root: a uid per task
            s["Corral:ClaudeCode:Executable"] = claude;
            s["Corral:ExitGraceSeconds"] = "15";
        });
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
        if (_api is not null)
            await _api.DisposeAsync();
    }

    /// <summary>The fake API's environment, less what a task of its own gets from Corral: HOME, TMPDIR, and no IS_SANDBOX.</summary>
    private JsonObject Task(string prompt, string? resume = null)
    {
        var env = new JsonObject();
        foreach (var (key, value) in ClaudeCodeKit.Environment(_api, "/unused"))
        {
            if (key is not ("HOME" or "TMPDIR" or "IS_SANDBOX" or "npm_config_cache"))
                env[key] = value;
        }

        var body = new JsonObject
        {
            ["agent"] = "claude-code",
            ["prompt"] = prompt,
            ["env"] = env,
            ["model"] = "claude-sonnet-5-5",
            ["permissions"] = new JsonObject { ["mode"] = "bypassPermissions" },
        };
        if (resume is not null)
            body["resumeSessionId"] = resume;
        return body;
    }

    [Fact(Timeout = 180_000)]
    public async Task Bypass_permissions_runs_as_a_dynamic_uid_without_IS_SANDBOX_and_a_later_task_resumes_the_session()
    {
        string nonce = Guid.NewGuid().ToString("N")[..10];
        _api.Enqueue(FakeReply.Bash($"echo {nonce} > out.txt && id -u", "write a file"), FakeReply.Text("Wrote it."));
        var first = await _server.Http.CreateAsync(Task("Write the file."), wait: 150);
        Assert.Equal(HttpStatusCode.OK, first.Status);
        Assert.Equal("Wrote it.", first.Body!["result"]!["text"]!.GetValue<string>());
        int uid = first.Body["uid"]!.GetValue<int>();
        Assert.True(uid >= 1_900_000_000);
        string work = first.Body["workdir"]!.GetValue<string>();
        Assert.Equal(nonce, File.ReadAllText(Path.Combine(work, "out.txt")).Trim());
        var events = await _server.Http.ReadEventsAsync(first.Id!);
        Assert.Contains(uid.ToString(), events.Single(e => e.Name == "agent.tool_result").Data!["contentPreview"]!.GetValue<string>());

        // A second task, another uid and another HOME, resumes the first one's session: the API sees the earlier turn.
        string session = first.Body["sessionId"]!.GetValue<string>();
        _api.Enqueue(FakeReply.Text("Resumed."));
        var second = await _server.Http.CreateAsync(Task("And now?", resume: session), wait: 150);
        Assert.Equal(HttpStatusCode.OK, second.Status);
        Assert.Equal("Resumed.", second.Body!["result"]!["text"]!.GetValue<string>());
        Assert.NotEqual(uid, second.Body["uid"]!.GetValue<int>());
        var resumed = _api.MessagesRequests[^1];
        Assert.Contains("Write the file.", resumed.UserTexts);
        Assert.Equal("And now?", resumed.LastUserText);
    }
}
