using System.Text.Json.Nodes;
using Corral.Testing.FakeAnthropic.Tests.Support;

namespace Corral.Testing.FakeAnthropic.Tests;

/// <summary>The fake MCP stdio server (tests/claude-code/fake-mcp) on its own.</summary>
public sealed class FakeMcpServerTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private static string Session(params JsonObject[] messages) =>
        string.Concat(messages.Select(m => m.ToJsonString() + "\n"));

    private static readonly string Conversation = Session(
        new JsonObject
        {
            ["jsonrpc"] = "2.0", ["id"] = 1, ["method"] = "initialize",
            ["params"] = new JsonObject
            {
                ["protocolVersion"] = "2025-06-18", ["capabilities"] = new JsonObject(),
                ["clientInfo"] = new JsonObject { ["name"] = "test", ["version"] = "1" },
            },
        },
        new JsonObject { ["jsonrpc"] = "2.0", ["method"] = "notifications/initialized" },
        new JsonObject { ["jsonrpc"] = "2.0", ["id"] = 2, ["method"] = "tools/list" },
        new JsonObject
        {
            ["jsonrpc"] = "2.0", ["id"] = 3, ["method"] = "tools/call",
            ["params"] = new JsonObject { ["name"] = "echo", ["arguments"] = new JsonObject { ["text"] = "hello" } },
        },
        new JsonObject { ["jsonrpc"] = "2.0", ["id"] = 4, ["method"] = "no/such/method" });

    private static void AssertConversation(string stdout)
    {
        var replies = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToArray();
        Assert.Equal([1, 2, 3, 4], replies.Select(r => r["id"]!.GetValue<int>()));
        Assert.Equal("2025-06-18", replies[0]["result"]!["protocolVersion"]!.GetValue<string>());
        Assert.Equal(["echo", "pid"], replies[1]["result"]!["tools"]!.AsArray().Select(t => t!["name"]!.GetValue<string>()));
        Assert.Equal("echo: hello", replies[2]["result"]!["content"]![0]!["text"]!.GetValue<string>());
        Assert.Equal(-32601, replies[3]["error"]!["code"]!.GetValue<int>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Speaks_json_rpc_over_stdio_writes_its_pid_and_exits_on_eof()
    {
        var scratch = Directory.CreateTempSubdirectory("corral-fakemcp-").FullName;
        try
        {
            var pidFile = Path.Combine(scratch, "pid");
            var result = await Exec.RunAsync("node", [Path.Combine(ClaudeCodeKit.FakeMcpPackageDirectory, "server.js")], Conversation,
                new Dictionary<string, string?> { ["FAKE_MCP_PID_FILE"] = pidFile }, timeout: Deadline);

            Assert.True(result.ExitCode == 0, result.Stderr);
            AssertConversation(result.Stdout);
            Assert.True(int.Parse(File.ReadAllText(pidFile)) > 1);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task Starts_through_npx_with_the_kits_environment()
    {
        var home = Directory.CreateTempSubdirectory("corral-npx-home-").FullName;
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: TestContext.Current.CancellationToken);
        try
        {
            var env = ClaudeCodeKit.Environment(api, home);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var result = await Exec.RunAsync("npx", ["-y", ClaudeCodeKit.FakeMcpPackageDirectory], Conversation, env,
                clearEnvironment: true, timeout: Deadline);

            Assert.True(result.ExitCode == 0, result.Stderr);
            AssertConversation(result.Stdout);
            TestContext.Current.TestOutputHelper?.WriteLine($"npx -y <dir>: {clock.Elapsed.TotalSeconds:0.00} s; stderr: {result.Stderr}");
        }
        finally
        {
            Directory.Delete(home, recursive: true);
        }
    }
}
