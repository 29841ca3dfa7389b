using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;
using Corral.Testing.FakeAnthropic;

namespace Corral.Server.Tests.Agents;

/// <summary>
/// End to end: the server runs the real, pinned Claude Code CLI (installed by tests/claude-code/install.sh on first
/// use), which talks to a fake Anthropic Messages API on loopback.
/// </summary>
public sealed class RealClaudeCodeTests : IAsyncLifetime
{
    private TestServer _server = null!;
    private FakeAnthropicServer _api = null!;
    private readonly string _home = Directory.CreateTempSubdirectory("corral-e2e-home-").FullName;
    private readonly string _work = Directory.CreateTempSubdirectory("corral-e2e-work-").FullName;

    public async ValueTask InitializeAsync()
    {
        string claude = ClaudeCodeKit.ExecutablePath;
        _api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        _server = await TestServer.StartAsync(s =>
        {
            s["Corral:ClaudeCode:Executable"] = claude;
            s["Corral:ExitGraceSeconds"] = "15";
        });
    }

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        await _api.DisposeAsync();
        Directory.Delete(_home, true);
        Directory.Delete(_work, true);
    }

    /// <summary>A task body with the environment that keeps the CLI on the fake API and off the network.</summary>
    private JsonObject Task(string prompt, string? mode = "bypassPermissions")
    {
        var env = new JsonObject();
        foreach (var (key, value) in ClaudeCodeKit.Environment(_api, _home))
            env[key] = value;
        var body = new JsonObject { ["agent"] = "claude-code", ["prompt"] = prompt, ["workdir"] = _work, ["env"] = env, ["model"] = "claude-sonnet-5-5" };
        if (mode is not null)
            body["permissions"] = new JsonObject { ["mode"] = mode };
        return body;
    }

    [Fact(Timeout = 120_000)]
    public async Task Plain_answer()
    {
        _api.Enqueue(FakeReply.Text("Hello from the fake API.", chunks: 3));
        var r = await _server.Http.CreateAsync(Task("Say hello.", mode: null), wait: 120);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        var task = r.Body!;
        Assert.Equal("Hello from the fake API.", task["result"]!["text"]!.GetValue<string>());
        Assert.Equal("success", task["result"]!["subtype"]!.GetValue<string>());
        Assert.Equal(0, task["process"]!["exitCode"]!.GetValue<int>());
        Assert.NotNull(task["usage"]);
        string session = task["sessionId"]!.GetValue<string>();
        Assert.Equal(session, _api.Requests.Single().Header("x-claude-code-session-id"));
        Assert.Equal("Say hello.", _api.MessagesRequests.Single().LastUserText);

        var events = await _server.Http.ReadEventsAsync(r.Id!);
        var init = events.Single(e => e.Name == "agent.init").Data!;
        Assert.Equal(session, init["sessionId"]!.GetValue<string>());
        Assert.Equal(ClaudeCodeKit.PinnedVersion, init["version"]!.GetValue<string>());
        Assert.Contains(events, e => e.Name == "agent.text" && e.Data!["text"]!.GetValue<string>() == "Hello from the fake API.");
        Assert.Equal("task.end", events[^1].Name);

        // The session transcript the CLI wrote is where a lost result would be recovered from.
        Assert.NotNull(Corral.Agents.ClaudeCode.TranscriptRecovery.TryRecover(Path.Combine(_home, ".claude", "projects"), _work, session));
    }

    [Fact(Timeout = 120_000)]
    public async Task Bash_tool_call()
    {
        string nonce = Guid.NewGuid().ToString("N")[..10];
        _api.Enqueue(FakeReply.Bash($"echo {nonce} > out.txt && echo ran-{nonce}", "write a file"), FakeReply.Text("Wrote it."));
        var r = await _server.Http.CreateAsync(Task("Write the file."), wait: 120);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("Wrote it.", r.Body!["result"]!["text"]!.GetValue<string>());
        Assert.Equal(nonce, File.ReadAllText(Path.Combine(_work, "out.txt")).Trim());
        var events = await _server.Http.ReadEventsAsync(r.Id!);
        Assert.Equal("Bash", events.Single(e => e.Name == "agent.tool_use").Data!["name"]!.GetValue<string>());
        var result = events.Single(e => e.Name == "agent.tool_result").Data!;
        Assert.False(result["isError"]!.GetValue<bool>());
        Assert.Contains("ran-" + nonce, result["contentPreview"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Mcp_stdio_server_through_npx()
    {
        string pidFile = Path.Combine(_work, "mcp-" + Guid.NewGuid().ToString("N")[..8] + ".pid");
        var config = JsonNode.Parse(ClaudeCodeKit.FakeMcpConfigJson("fake", pidFile: pidFile))!;
        _api.Enqueue(FakeReply.Mcp("fake", "echo", new { text = "over stdio" }), FakeReply.Text("MCP answered."));
        var body = Task("Use the MCP tool.");
        body["mcpServers"] = config["mcpServers"]!.DeepClone();
        var r = await _server.Http.CreateAsync(body, wait: 120);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("MCP answered.", r.Body!["result"]!["text"]!.GetValue<string>());

        var events = await _server.Http.ReadEventsAsync(r.Id!);
        var mcp = events.Single(e => e.Name == "agent.init").Data!["mcp"]!.AsArray();
        Assert.Contains(mcp, s => s!["name"]!.GetValue<string>() == "fake" && s["status"]!.GetValue<string>() == "connected");
        Assert.Equal("mcp__fake__echo", events.Single(e => e.Name == "agent.tool_use").Data!["name"]!.GetValue<string>());
        Assert.Contains("echo: over stdio", events.Single(e => e.Name == "agent.tool_result").Data!["contentPreview"]!.GetValue<string>());

        // The MCP server (a grandchild through npx) is gone with its task.
        int pid = int.Parse(File.ReadAllText(pidFile));
        await Proc.WaitForAsync(() => !Proc.IsAlive(pid), TimeSpan.FromSeconds(10), $"MCP server {pid} to be gone");
    }

    [Fact(Timeout = 120_000)]
    public async Task Cancel_during_a_run_interrupts_and_keeps_the_result()
    {
        _api.Enqueue(FakeReply.Hang());
        var r = await _server.Http.CreateAsync(Task("Think forever."), wait: null);
        Assert.Equal(HttpStatusCode.Accepted, r.Status);
        // Cancel once the API call is in flight.
        await _api.WaitForRequestAsync(q => q.Messages is not null, TimeSpan.FromSeconds(90), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Accepted, (await _server.Http.CancelAsync(r.Id!)).Status);

        var task = await _server.Http.WaitForEndAsync(r.Id!, TimeSpan.FromSeconds(90));
        Assert.Equal("cancelled", task["status"]!.GetValue<string>());
        Assert.Equal("error_during_execution", task["result"]!["subtype"]!.GetValue<string>());
        Assert.Equal("aborted_streaming", task["result"]!["terminalReason"]!.GetValue<string>());
        Assert.Null(task["process"]!["signal"]); // the interrupt was enough: no signal needed
        var events = await _server.Http.ReadEventsAsync(r.Id!);
        Assert.Contains(events, e => e.Name == "agent.notice" && e.Data!["kind"]!.GetValue<string>() == "interrupted");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_background_process_left_by_the_Bash_tool_does_not_outlive_the_task()
    {
        string pidFile = Path.Combine(_work, "bg-" + Guid.NewGuid().ToString("N")[..8] + ".pid");
        _api.Enqueue(FakeReply.Bash($"setsid sleep 300 > /dev/null 2>&1 < /dev/null & echo $! > {pidFile}; echo started", "start a daemon"),
            FakeReply.Text("Started."));
        // Its PID is read once the task is over, when it may already belong to another test's process: never kill by it.
        var r = await _server.Http.CreateAsync(Task("Start something in the background."), wait: 120);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        int pid = int.Parse(File.ReadAllText(pidFile).Trim());
        Assert.False(Proc.IsAlive(pid), $"the background sleep {pid} outlived its task");
        var killed = r.Body!["process"]!["killed"]!.AsArray().Select(k => k!["pid"]!.GetValue<int>());
        Assert.Contains(pid, killed);
    }
}
