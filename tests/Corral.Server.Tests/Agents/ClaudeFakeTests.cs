using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Agents;

/// <summary>Claude Code tasks against the fake CLI, which prints stream-json shaped like the real one.</summary>
public sealed class ClaudeFakeTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private readonly HttpClient _http = shared.Server.Http;

    [Fact(Timeout = 120_000)]
    public async Task Plain_answer_succeeds_with_result_cost_usage_and_ordered_events()
    {
        var r = await _http.ClaudeAsync("hello");
        Assert.Equal(HttpStatusCode.OK, r.Status);
        var task = r.Body!;
        Assert.Equal("succeeded", task["status"]!.GetValue<string>());
        Assert.Equal($"/v1/tasks/{r.Id}", r.Message.Headers.Location!.OriginalString);
        Assert.Equal("hello back", task["result"]!["text"]!.GetValue<string>());
        Assert.Equal("success", task["result"]!["subtype"]!.GetValue<string>());
        Assert.False(task["result"]!["recovered"]!.GetValue<bool>());
        Assert.Equal(1, task["result"]!["numTurns"]!.GetValue<int>());
        Assert.Equal(0.0123, task["costUsd"]!.GetValue<double>());
        Assert.Equal(5, task["usage"]!["output_tokens"]!.GetValue<int>());
        Assert.NotNull(task["usage"]!["modelUsage"]);
        Assert.Equal(0, task["process"]!["exitCode"]!.GetValue<int>());
        Assert.NotNull(task["startedAt"]);
        Assert.NotNull(task["endedAt"]);
        string session = task["sessionId"]!.GetValue<string>();
        Assert.True(Guid.TryParse(session, out _));

        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Equal(["task.status", "task.status", "agent.init", "agent.text", "task.status", "task.result", "task.end"], events.Select(e => e.Name));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long?)i), events.Select(e => e.Id));
        Assert.Equal(["queued", "running", "succeeded"], events.Where(e => e.Name == "task.status").Select(e => e.Data!["status"]!.GetValue<string>()));
        Assert.Equal("hello from fake", events.Single(e => e.Name == "agent.text").Data!["text"]!.GetValue<string>());
        Assert.Equal("succeeded", events.Single(e => e.Name == "task.result").Data!["status"]!.GetValue<string>());

        // The argv: stream-json both ways, the session in '=' form, no positional prompt; CLAUDECODE removed.
        var init = events.Single(e => e.Name == "agent.init").Data!;
        Assert.Equal(session, init["sessionId"]!.GetValue<string>());
        var transcript = await _http.GetAsync($"/v1/tasks/{r.Id}/transcript");
        Assert.Equal("application/x-ndjson", transcript.Content.Headers.ContentType!.MediaType);
        var lines = (await transcript.Content.ReadAsStringAsync()).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(["system", "assistant", "result"], lines.Select(l => l["type"]!.GetValue<string>()));
        var argv = lines[0]["fake_argv"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Equal(["-p", "--output-format", "stream-json", "--verbose", "--input-format", "stream-json", "--session-id=" + session], argv);
        Assert.Null(lines[0]["fake_env"]!["CLAUDECODE"]);
        Assert.NotNull(lines[0]["fake_env"]!["CORRAL_TREE_ID"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task Tool_call_becomes_tool_use_and_tool_result_events()
    {
        var r = await _http.ClaudeAsync("tool");
        Assert.Equal(HttpStatusCode.OK, r.Status);
        var events = await _http.ReadEventsAsync(r.Id!);
        var use = events.Single(e => e.Name == "agent.tool_use").Data!;
        Assert.Equal("toolu_1", use["toolUseId"]!.GetValue<string>());
        Assert.Equal("Bash", use["name"]!.GetValue<string>());
        Assert.Equal("ls", use["input"]!["command"]!.GetValue<string>());
        var result = events.Single(e => e.Name == "agent.tool_result").Data!;
        Assert.Equal("toolu_1", result["toolUseId"]!.GetValue<string>());
        Assert.False(result["isError"]!.GetValue<bool>());
        Assert.Equal("a.txt\nb.txt", result["contentPreview"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Output_nested_deeper_than_the_apis_json_keeps_the_result_and_the_history_readable()
    {
        // 200 levels: within what an agent line may hold, past what the API's JSON writes (its records and events
        // sit in envelopes of their own). The line itself is kept byte for byte in the output.
        var r = await _http.ClaudeAsync("deep:200");
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("succeeded", r.TaskStatus);
        Assert.Equal("deep done", r.Body!["result"]!["text"]!.GetValue<string>());
        Assert.Equal(1, r.Body["usage"]!["input_tokens"]!.GetValue<int>());
        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Equal("Bash", events.Single(e => e.Name == "agent.tool_use").Data!["name"]!.GetValue<string>());
        var list = await _http.SendAsync(HttpMethod.Get, "/v1/tasks?limit=500");
        Assert.Equal(HttpStatusCode.OK, list.Status);
        var output = await _http.GetStringAsync($"/v1/tasks/{r.Id}/output?stream=stdout");
        Assert.Contains(string.Concat(Enumerable.Repeat("{\"d\":", 200)), output);
    }

    [Theory(Timeout = 120_000)]
    [InlineData(1)]
    [InlineData(143)]
    public async Task A_good_result_wins_over_a_bad_exit_code(int exitCode)
    {
        var r = await _http.ClaudeAsync("exit:" + exitCode);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("succeeded", r.TaskStatus);
        Assert.Equal(exitCode, r.Body!["process"]!["exitCode"]!.GetValue<int>());
        Assert.Equal("done before exit " + exitCode, r.Body["result"]!["text"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Garbage_lines_are_counted_kept_and_do_not_break_the_run()
    {
        var r = await _http.ClaudeAsync("garbage");
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal(2, r.Body!["output"]!["nonJsonLines"]!.GetValue<int>());
        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Equal(["[SandboxDebug] not json", "{ broken json"],
            events.Where(e => e.Name == "agent.notice" && e.Data!["kind"]!.GetValue<string>() == "non_json").Select(e => e.Data!["message"]!.GetValue<string>()));
        Assert.Contains(events, e => e.Name == "agent.notice" && e.Data!["kind"]!.GetValue<string>() == "api_retry");
        string transcript = await _http.GetStringAsync($"/v1/tasks/{r.Id}/transcript");
        var lines = transcript.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(lines, l => JsonNode.Parse(l)); // still NDJSON: non-JSON lines are wrapped
        Assert.Contains(lines, l => JsonNode.Parse(l)!["text"]?.GetValue<string>() == "[SandboxDebug] not json");
        Assert.Contains(lines, l => l.Contains("\"mystery_type\""));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_16_MiB_line_arrives_whole()
    {
        var r = await _http.ClaudeAsync("big", wait: 120);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("big done", r.Body!["result"]!["text"]!.GetValue<string>());
        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Equal(16 * 1024 * 1024, events.Single(e => e.Name == "agent.text").Data!["text"]!.GetValue<string>().Length);
        string transcript = await _http.GetStringAsync($"/v1/tasks/{r.Id}/transcript");
        Assert.Contains(transcript.Split('\n'), l => l.Length > 16 * 1024 * 1024);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_escapee_holding_stdout_does_not_delay_the_task_and_does_not_survive_it()
    {
        string workdir = Directory.CreateTempSubdirectory("corral-escapee-").FullName;
        int escapee = 0;
        try
        {
            var started = DateTime.UtcNow;
            var r = await _http.CreateAsync(new { agent = "claude-code", prompt = "escapee", workdir }, wait: 60);
            Assert.Equal(HttpStatusCode.OK, r.Status);
            Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(30), "the sleep held stdout for 300 s; the task must not wait for it");
            escapee = int.Parse(File.ReadAllText(Path.Combine(workdir, "escapee.pid")));
            Assert.False(Proc.IsAlive(escapee), $"escapee {escapee} outlived its task");
            Assert.Contains(r.Body!["process"]!["killed"]!.AsArray(), k => k!["pid"]!.GetValue<int>() == escapee);
        }
        finally
        {
            Directory.Delete(workdir, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task No_result_and_no_transcript_is_lost_502()
    {
        using var home = new Scratch("corral-home-");
        var r = await _http.ClaudeAsync("noresult", env: new() { ["HOME"] = home.Path });
        Assert.Equal(HttpStatusCode.BadGateway, r.Status);
        Assert.Equal("lost", r.TaskStatus);
        Assert.Equal("result_lost", r.ErrorCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task No_result_but_a_final_end_turn_in_the_transcript_is_recovered()
    {
        using var home = new Scratch("corral-home-");
        var r = await _http.ClaudeAsync("recover", env: new() { ["HOME"] = home.Path });
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("succeeded", r.TaskStatus);
        Assert.True(r.Body!["result"]!["recovered"]!.GetValue<bool>());
        Assert.Equal("recovered answer", r.Body["result"]!["text"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task A_transcript_that_does_not_end_in_end_turn_is_not_trusted()
    {
        using var home = new Scratch("corral-home-");
        var r = await _http.ClaudeAsync("recoverbad", env: new() { ["HOME"] = home.Path });
        Assert.Equal(HttpStatusCode.BadGateway, r.Status);
        Assert.Equal("lost", r.TaskStatus);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_api_error_result_is_an_agent_error_422()
    {
        var r = await _http.ClaudeAsync("apierror");
        Assert.Equal((HttpStatusCode)422, r.Status);
        Assert.Equal("failed", r.TaskStatus);
        Assert.Equal("agent_error", r.ErrorCode);
        Assert.Equal(529, r.Body!["result"]!["apiErrorStatus"]!.GetValue<int>());
        Assert.True(r.Body["result"]!["isError"]!.GetValue<bool>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Max_turns_is_an_agent_error_with_its_subtype()
    {
        var r = await _http.ClaudeAsync("maxturns");
        Assert.Equal((HttpStatusCode)422, r.Status);
        Assert.Equal("error_max_turns", r.Body!["result"]!["subtype"]!.GetValue<string>());
        Assert.Equal("Reached maximum number of turns (1)", r.Body["result"]!["text"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Stderr_lines_become_events_and_env_reaches_the_agent()
    {
        var r = await _http.ClaudeAsync("stderr");
        Assert.Equal(HttpStatusCode.OK, r.Status);
        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Equal(["warning 0", "warning 1", "warning 2"], events.Where(e => e.Name == "agent.stderr").Select(e => e.Data!["text"]!.GetValue<string>()));

        var env = await _http.ClaudeAsync("env", env: new() { ["FOO"] = "bar" });
        var seen = JsonNode.Parse(env.Body!["result"]!["text"]!.GetValue<string>())!;
        Assert.Equal("bar", seen["FOO"]!.GetValue<string>());
        Assert.Null(seen["CLAUDECODE"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task Options_become_flags_and_mcp_servers_a_per_task_file()
    {
        var r = await _http.CreateAsync(JsonNode.Parse("""
            {"agent":"claude-code","prompt":"hello","model":"sonnet","appendSystemPrompt":"-be brief",
             "limits":{"maxTurns":3},"permissions":{"mode":"acceptEdits","allowedTools":["Read","Bash(git *)"],"disallowedTools":["Edit"]},
             "mcpServers":{"docs":{"command":"npx","args":["-y","docs-mcp"],"env":{}}},"metadata":{"caller":"ci"}}
            """)!, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("ci", r.Body!["metadata"]!["caller"]!.GetValue<string>());
        string transcript = await _http.GetStringAsync($"/v1/tasks/{r.Id}/transcript");
        var argv = JsonNode.Parse(transcript.Split('\n')[0])!["fake_argv"]!.AsArray().Select(a => a!.GetValue<string>()).ToList();
        Assert.Contains("--model=sonnet", argv);
        Assert.Contains("--max-turns=3", argv);
        Assert.Contains("--permission-mode=acceptEdits", argv);
        Assert.Contains("--append-system-prompt=-be brief", argv);
        Assert.DoesNotContain("hello", argv);
        int allowed = argv.IndexOf("--allowedTools");
        Assert.Equal(["Read", "Bash(git *)"], argv.Skip(allowed + 1).Take(2));
        Assert.Equal("Edit", argv[argv.IndexOf("--disallowedTools") + 1]);
        int mcp = argv.IndexOf("--mcp-config");
        Assert.Equal("--strict-mcp-config", argv[mcp + 2]);
        var config = JsonNode.Parse(File.ReadAllText(argv[mcp + 1]))!;
        Assert.Equal("npx", config["mcpServers"]!["docs"]!["command"]!.GetValue<string>());
    }
}
