using System.Text.Json.Nodes;
using Corral.Testing.FakeAnthropic.Tests.Support;
using static Corral.Testing.FakeAnthropic.Tests.Support.ClaudeRun;

namespace Corral.Testing.FakeAnthropic.Tests;

/// <summary>
/// The real, pinned Claude Code CLI (tests/claude-code/install.sh) against <see cref="FakeAnthropicServer"/>,
/// spawned with exactly the flags the Corral server uses, the prompt as a stream-json line on stdin.
/// </summary>
public sealed class ClaudeCodeCliTests
{
    /// <summary>Generous: a run takes ~1 s here, but the machine is a noisy 2-core box.</summary>
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(90);

    private static readonly TimeSpan ExitDeadline = TimeSpan.FromSeconds(30);

    [Fact(Timeout = 120_000)]
    public async Task Installed_cli_is_the_pinned_version()
    {
        var result = await Exec.RunAsync(ClaudeCodeKit.ExecutablePath, ["--version"], timeout: Deadline);
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith(ClaudeCodeKit.PinnedVersion + " ", result.Stdout);
    }

    [Fact(Timeout = 120_000)]
    public async Task Plain_answer_ends_in_a_success_result_with_the_fakes_text()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        api.Enqueue(FakeReply.Text("Hello from the fake API.", chunks: 3));
        await using var run = Start(api, new ClaudeRunOptions { Model = "claude-sonnet-5-5", MaxTurns = 3 });

        await run.SendUserAsync("Say hello.");
        var init = await run.WaitForTypeAsync("system", Deadline, "init");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal(run.SessionId, Str(init, "session_id"));
        Assert.Equal("claude-sonnet-5-5", Str(init, "model"));
        Assert.Equal("success", Str(result, "subtype"));
        Assert.False(result["is_error"]!.GetValue<bool>());
        Assert.Equal("Hello from the fake API.", Str(result, "result"));
        Assert.Equal(run.SessionId, Str(result, "session_id"));
        Assert.Contains(run.Lines, l => Str(l, "type") == "assistant"
            && l["message"]?["content"]?[0]?["text"]?.GetValue<string>() == "Hello from the fake API.");

        // With CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 the only endpoint is POST /v1/messages?beta=true.
        var request = Assert.Single(api.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/v1/messages", request.Path);
        Assert.Equal("?beta=true", request.Query);
        Assert.Equal(FakeAnthropicServer.DefaultApiKey, request.Header("x-api-key"));
        Assert.Equal("2023-06-01", request.Header("anthropic-version"));
        Assert.Equal(run.SessionId, request.Header("x-claude-code-session-id"));
        Assert.StartsWith($"claude-cli/{ClaudeCodeKit.PinnedVersion} ", request.Header("user-agent"));
        var messages = request.Messages!;
        Assert.True(messages.Stream);
        Assert.Equal("claude-sonnet-5-5", messages.Model);
        Assert.Equal("Say hello.", messages.LastUserText);
        Assert.Equal(0, messages.AssistantTurnCount);
        Assert.Contains("Bash", messages.ToolNames);

        var exit = await run.FinishAsync(ExitDeadline);
        Assert.Equal(0, exit.ExitCode);
        Assert.Empty(exit.Leftovers);
        Assert.Empty(api.Faults);
    }

    public static TheoryData<string, string[]> BashPermissionSetups => new()
    {
        { "bypassPermissions", [] },
        { "acceptEdits", ["Bash"] },
    };

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(BashPermissionSetups))]
    public async Task Bash_tool_call_runs_the_command_and_its_result_reaches_the_API(string permissionMode, string[] allowedTools)
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        var nonce = Guid.NewGuid().ToString("N")[..12];
        var bash = FakeReply.Bash($"echo {nonce} > bash-out.txt && echo ran-{nonce}", "write a file").WithLeadingText("Running it.");
        api.Responder = FakeScript.ByTurn(bash, FakeReply.Text("All done."));
        await using var run = Start(api, new ClaudeRunOptions { PermissionMode = permissionMode, AllowedTools = allowedTools, MaxTurns = 5 });

        await run.SendUserAsync("Write the file.");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal("success", Str(result, "subtype"));
        Assert.Equal("All done.", Str(result, "result"));
        Assert.Equal(2, api.MessagesRequests.Count);
        var second = api.MessagesRequests[1];
        Assert.Equal(1, second.AssistantTurnCount);
        var toolResult = second.ToolResultFor(bash.ToolUseIds.Single());
        Assert.NotNull(toolResult);
        Assert.False(toolResult.IsError, toolResult.Text);
        Assert.Equal($"ran-{nonce}", toolResult.Text.Trim());
        Assert.Equal(nonce, File.ReadAllText(Path.Combine(run.WorkDirectory, "bash-out.txt")).Trim());

        // The CLI reports the call and its result on stdout too.
        Assert.Contains(run.Lines, l => Str(l, "type") == "assistant" && l["message"]?["content"]?[0]?["name"]?.GetValue<string>() == "Bash");
        Assert.Contains(run.Lines, l => Str(l, "type") == "user" && l["message"]?["content"]?[0]?["tool_use_id"]?.GetValue<string>() == bash.ToolUseIds[0]);
        Assert.Empty(result["permission_denials"]!.AsArray());

        Assert.Equal(0, (await run.FinishAsync(ExitDeadline)).ExitCode);
        Assert.Empty(api.Faults);
    }

    [Fact(Timeout = 120_000)]
    public async Task Bash_without_permission_is_denied_and_the_denial_reaches_the_API()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        var bash = FakeReply.Bash("echo nope > denied.txt");
        api.Responder = FakeScript.ByTurn(bash, FakeReply.Text("Could not."));
        await using var run = Start(api, new ClaudeRunOptions { PermissionMode = "default" });

        await run.SendUserAsync("Write the file.");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal("success", Str(result, "subtype"));
        var denial = Assert.Single(result["permission_denials"]!.AsArray());
        Assert.Equal("Bash", Str(denial, "tool_name"));
        Assert.True(api.MessagesRequests[1].ToolResultFor(bash.ToolUseIds[0])!.IsError);
        Assert.False(File.Exists(Path.Combine(run.WorkDirectory, "denied.txt")));
        await run.FinishAsync(ExitDeadline);
    }

    [Fact(Timeout = 120_000)]
    public async Task Mcp_tool_call_through_npx_returns_the_fake_mcp_servers_result()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        var nonce = Guid.NewGuid().ToString("N")[..12];
        var call = FakeReply.Mcp("fake", "echo", new { text = nonce });
        api.Responder = FakeScript.ByTurn(call, FakeReply.Text("The MCP server answered."));
        var scratch = Directory.CreateTempSubdirectory("corral-mcp-").FullName;
        var pidFile = Path.Combine(scratch, "mcp.pid");
        var mcpPid = 0;
        Proc.Identity? mcp = null;
        try
        {
            await using var run = Start(api, new ClaudeRunOptions
            {
                McpConfigJson = ClaudeCodeKit.FakeMcpConfigJson("fake", pidFile, Path.Combine(scratch, "mcp.log")),
                AllowedTools = ["mcp__fake__echo"],
                MaxTurns = 5,
            });

            await run.SendUserAsync("Echo the nonce through MCP.");
            var init = await run.WaitForTypeAsync("system", Deadline, "init");
            var server = Assert.Single(init["mcp_servers"]!.AsArray());
            Assert.Equal("fake", Str(server, "name"));
            Assert.Equal("connected", Str(server, "status"));
            Assert.Contains("mcp__fake__echo", init["tools"]!.AsArray().Select(t => t!.GetValue<string>()));
            mcpPid = await Proc.ReadPidFileAsync(pidFile, Deadline);
            mcp = Proc.Identify(mcpPid);

            var result = await run.WaitForResultAsync(Deadline);
            Assert.Equal("success", Str(result, "subtype"));
            Assert.Equal("The MCP server answered.", Str(result, "result"));
            var toolResult = api.MessagesRequests[1].ToolResultFor(call.ToolUseIds[0]);
            Assert.NotNull(toolResult);
            Assert.False(toolResult.IsError, toolResult.Text);
            Assert.Equal($"echo: {nonce}", toolResult.Text);

            var exit = await run.FinishAsync(ExitDeadline);
            Assert.Equal(0, exit.ExitCode);
            Assert.Empty(exit.Leftovers); // the CLI took the npx chain down with it
            // The fake MCP server exits on stdin EOF, which the CLI sends when it shuts down.
            Assert.True(await Proc.EventuallyAsync(() => !Proc.IsAlive(mcpPid), TimeSpan.FromSeconds(15)),
                $"MCP server {mcpPid} still alive: {Proc.CommandLine(mcpPid)}");
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"timing: init {run.FirstSeen("system", "init")?.TotalSeconds:0.00} s, result {run.FirstSeen("result")?.TotalSeconds:0.00} s, " +
                $"exit {exit.ExitedAfter.TotalSeconds:0.00} s");
            Assert.Empty(api.Faults);
        }
        finally
        {
            Proc.KillIfAlive(mcp);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Npx_mcp_server_that_ignores_stdin_eof_outlives_the_cli_in_its_process_group()
    {
        // What the server's teardown must handle: the CLI signals only `npm exec`; the real server (a grandchild)
        // gets stdin EOF, and if it ignores that it survives the CLI, orphaned but still in the CLI's process group.
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.Always(FakeReply.Text("ok")), TestContext.Current.CancellationToken);
        var scratch = Directory.CreateTempSubdirectory("corral-mcp-leak-").FullName;
        var pidFile = Path.Combine(scratch, "mcp.pid");
        var mcpPid = 0;
        Proc.Identity? mcp = null;
        try
        {
            await using var run = Start(api, new ClaudeRunOptions
            {
                McpConfigJson = ClaudeCodeKit.FakeMcpConfigJson("fake", pidFile,
                    extraEnvironment: new Dictionary<string, string> { ["FAKE_MCP_IGNORE_EOF"] = "1" }),
            });
            await run.SendUserAsync("Hi.");
            Assert.Equal("success", Str(await run.WaitForResultAsync(Deadline), "subtype"));
            mcpPid = await Proc.ReadPidFileAsync(pidFile, Deadline);
            mcp = Proc.Identify(mcpPid);

            var closedAt = run.Elapsed;
            var exit = await run.FinishAsync(ExitDeadline);

            Assert.Equal(0, exit.ExitCode);
            Assert.Contains(exit.Leftovers, l => l.StartsWith($"{mcpPid} ", StringComparison.Ordinal)); // then SIGKILLed by the group kill
            Assert.True(await Proc.EventuallyAsync(() => !Proc.IsAlive(mcpPid), TimeSpan.FromSeconds(15)));
            TestContext.Current.TestOutputHelper?.WriteLine(
                $"timing: CLI exited {(exit.ExitedAfter - closedAt).TotalSeconds:0.00} s after stdin EOF; leftovers: {string.Join("; ", exit.Leftovers)}");
        }
        finally
        {
            Proc.KillIfAlive(mcp);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Interrupt_while_text_streams_slowly_ends_in_an_error_during_execution_result()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        api.Enqueue(FakeReply.SlowText(chunks: 600, delay: TimeSpan.FromMilliseconds(100))); // ~60 s if not interrupted
        await using var run = Start(api);

        await run.SendUserAsync("Tell me a long story.");
        var request = await api.WaitForRequestAsync(r => r.Messages is not null, Deadline, TestContext.Current.CancellationToken);
        await request.StreamStarted.WaitAsync(Deadline, TestContext.Current.CancellationToken);
        await run.WaitForTypeAsync("system", Deadline, "init");

        var interruptedAt = run.Elapsed;
        await run.SendInterruptAsync("req_1");
        var ack = await run.WaitForLineAsync(l => Str(l, "type") == "control_response" && Str(l["response"], "request_id") == "req_1",
            Deadline, "the interrupt's control_response");
        Assert.Equal("success", Str(ack["response"], "subtype"));
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal("error_during_execution", Str(result, "subtype"));
        Assert.True(result["is_error"]!.GetValue<bool>());
        Assert.Equal("aborted_streaming", Str(result, "terminal_reason"));
        Assert.True(run.Elapsed - interruptedAt < TimeSpan.FromSeconds(20), $"result {run.Elapsed - interruptedAt} after the interrupt");
        Assert.Equal(ReplyOutcome.ClientDisconnected, await request.Finished.WaitAsync(Deadline, TestContext.Current.CancellationToken));
        Assert.Contains(run.Lines, l => Str(l, "type") == "user" && l["message"]?["content"]?[0]?["text"]?.GetValue<string>() == "[Request interrupted by user]");

        var exit = await run.FinishAsync(ExitDeadline);
        Assert.Equal(1, exit.ExitCode); // the last result is an error
        Assert.Empty(api.Faults);
    }

    [Fact(Timeout = 120_000)]
    public async Task Interrupt_while_the_API_hangs_ends_in_an_error_during_execution_result()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        api.Enqueue(FakeReply.Hang());
        await using var run = Start(api);

        await run.SendUserAsync("Think forever.");
        var request = await api.WaitForRequestAsync(r => r.Messages is not null, Deadline, TestContext.Current.CancellationToken);
        await request.StreamStarted.WaitAsync(Deadline, TestContext.Current.CancellationToken);

        await run.SendInterruptAsync("req_1");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal("error_during_execution", Str(result, "subtype"));
        Assert.Equal("aborted_streaming", Str(result, "terminal_reason"));
        Assert.Equal(ReplyOutcome.ClientDisconnected, await request.Finished.WaitAsync(Deadline, TestContext.Current.CancellationToken));
        Assert.Equal(1, (await run.FinishAsync(ExitDeadline)).ExitCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Interrupt_during_a_running_bash_command_ends_in_an_aborted_tools_result()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        var scratch = Directory.CreateTempSubdirectory("corral-bash-").FullName;
        var pidFile = Path.Combine(scratch, "sleep.pid");
        var sleepPid = 0;
        Proc.Identity? sleeper = null;
        try
        {
            api.Responder = FakeScript.ByTurn(FakeReply.Bash($"sh -c 'echo $$ > {pidFile}; exec sleep 120'"), FakeReply.Text("unreachable"));
            await using var run = Start(api, new ClaudeRunOptions { PermissionMode = "bypassPermissions" });

            await run.SendUserAsync("Sleep.");
            sleepPid = await Proc.ReadPidFileAsync(pidFile, Deadline);
            sleeper = Proc.Identify(sleepPid);
            await run.SendInterruptAsync("req_1");
            var result = await run.WaitForResultAsync(Deadline);

            Assert.Equal("error_during_execution", Str(result, "subtype"));
            Assert.Equal("aborted_tools", Str(result, "terminal_reason"));
            Assert.Single(api.MessagesRequests); // the tool's result was never sent
            // The CLI kills the command it was running.
            Assert.True(await Proc.EventuallyAsync(() => !Proc.IsAlive(sleepPid), TimeSpan.FromSeconds(15)),
                $"bash command {sleepPid} still alive: {Proc.CommandLine(sleepPid)}");
            Assert.Equal(1, (await run.FinishAsync(ExitDeadline)).ExitCode);
        }
        finally
        {
            Proc.KillIfAlive(sleeper);
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Overloaded_API_without_retries_ends_in_an_api_error_result()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        api.Enqueue(FakeReply.Overloaded());
        await using var run = Start(api, new ClaudeRunOptions { MaxRetries = 0 });

        await run.SendUserAsync("Hello?");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal("success", Str(result, "subtype")); // sic: API errors are subtype success + is_error
        Assert.True(result["is_error"]!.GetValue<bool>());
        Assert.Equal(529, result["api_error_status"]!.GetValue<int>());
        Assert.Equal("api_error", Str(result, "terminal_reason"));
        Assert.Single(api.MessagesRequests);
        Assert.Equal(1, (await run.FinishAsync(ExitDeadline)).ExitCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Overloaded_API_is_retried_and_the_retry_is_reported()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        api.Enqueue(FakeReply.Overloaded(), FakeReply.Text("Recovered."));
        await using var run = Start(api, new ClaudeRunOptions { MaxRetries = 2 });

        await run.SendUserAsync("Hello?");
        var retry = await run.WaitForTypeAsync("system", Deadline, "api_retry");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal(529, retry["error_status"]!.GetValue<int>());
        Assert.Equal("success", Str(result, "subtype"));
        Assert.Equal("Recovered.", Str(result, "result"));
        Assert.Equal(2, api.MessagesRequests.Count);
        Assert.Equal(0, (await run.FinishAsync(ExitDeadline)).ExitCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Max_turns_ends_in_an_error_max_turns_result()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        api.Responder = _ => FakeReply.Bash("true");
        await using var run = Start(api, new ClaudeRunOptions { MaxTurns = 1, PermissionMode = "bypassPermissions" });

        await run.SendUserAsync("Loop.");
        var result = await run.WaitForResultAsync(Deadline);

        Assert.Equal("error_max_turns", Str(result, "subtype"));
        Assert.Equal("max_turns", Str(result, "terminal_reason"));
        Assert.Equal(1, (await run.FinishAsync(ExitDeadline)).ExitCode);
    }
}
