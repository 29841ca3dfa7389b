using System.Text.Json.Nodes;
using Corral.Agents;
using Corral.Agents.ClaudeCode;
using Corral.Agents.Command;
using Corral.Processes;

namespace Corral.Server.Tests.Agents;

/// <summary>The adapters on their own: argv, parsing, outcome, transcript recovery.</summary>
public sealed class AgentAdapterTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("corral-agent-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private AgentRequest Request(string prompt = "hi") => new() { Prompt = prompt, WorkingDirectory = _dir, TaskDirectory = _dir };

    private static ParsedLine Out(IAgentRun run, string text) => run.Parse(OutputStream.StandardOutput, System.Text.Encoding.UTF8.GetBytes(text), isFragment: false);

    [Fact]
    public void The_prompt_goes_to_stdin_as_a_stream_json_user_message_never_into_argv()
    {
        var run = new ClaudeCodeAdapter(new ClaudeCodeSettings()).Prepare(Request("--help me"));
        Assert.DoesNotContain(run.Spec.Arguments, a => a.Contains("help me"));
        Assert.Equal(InputSource.Pipe, run.Spec.StandardInput);
        Assert.True(run.KeepInputOpen);
        var line = JsonNode.Parse(System.Text.Encoding.UTF8.GetString(run.InitialInput.Span))!;
        Assert.Equal("user", line["type"]!.GetValue<string>());
        Assert.Equal("--help me", line["message"]!["content"]!.GetValue<string>());
        var interrupt = JsonNode.Parse(System.Text.Encoding.UTF8.GetString(run.InterruptInput!.Value.Span))!;
        Assert.Equal("control_request", interrupt["type"]!.GetValue<string>());
        Assert.Equal("interrupt", interrupt["request"]!["subtype"]!.GetValue<string>());
        Assert.True(run.Spec.Environment.ContainsKey("CLAUDECODE"));
        Assert.Null(run.Spec.Environment["CLAUDECODE"]);
        Assert.True(run.Spec.Limits.MaxLineLength >= 16 << 20);
        Assert.Equal(OverflowPolicy.Wait, run.Spec.Limits.Overflow);
    }

    [Fact]
    public void Lines_dispatch_on_type_unknown_types_are_ignored_and_the_result_is_authoritative()
    {
        var run = new ClaudeCodeAdapter(new ClaudeCodeSettings()).Prepare(Request());
        Assert.Empty(Out(run, """{"type":"stream_event","event":{}}""").Events);
        Assert.True(Out(run, """{"type":"brand_new_type"}""").IsJson);
        Assert.False(Out(run, "plain text").IsJson);
        Assert.False(run.HasResult);
        Out(run, """{"duration_ms":3,"num_turns":2,"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s1","total_cost_usd":0.5}""");
        Assert.True(run.HasResult);
        var outcome = run.Complete(null, default);
        Assert.Equal(AgentOutcomeKind.Succeeded, outcome.Kind);
        Assert.Equal("ok", outcome.Result!.Text);
        Assert.Equal(2, outcome.Result.NumTurns);
        Assert.Equal(0.5, outcome.CostUsd);
        Assert.Equal("s1", outcome.SessionId);
        Assert.Equal(1, outcome.NonJsonLines);
    }

    [Fact]
    public void Transcript_recovery_trusts_only_a_final_end_turn_message()
    {
        string projects = Path.Combine(_dir, "projects");
        string cwd = "/srv/work/my.repo";
        Assert.Equal("-srv-work-my-repo", TranscriptRecovery.Slug(cwd));
        Directory.CreateDirectory(Path.Combine(projects, "-srv-work-my-repo"));
        string file = Path.Combine(projects, "-srv-work-my-repo", "s1.jsonl");

        File.WriteAllLines(file, [
            """{"type":"user","message":{"role":"user","content":"q"}}""",
            """{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"part one, "}],"stop_reason":"end_turn"}}""",
            """{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"part two"}],"stop_reason":"end_turn"}}""",
            """{"type":"summary","summary":"x"}""",
        ]);
        Assert.Equal("part one, part two", TranscriptRecovery.TryRecover(projects, cwd, "s1")!.Text);

        File.AppendAllLines(file, ["""{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t"}]}}"""]);
        Assert.Null(TranscriptRecovery.TryRecover(projects, cwd, "s1"));
        Assert.Null(TranscriptRecovery.TryRecover(projects, cwd, "missing"));
        Assert.Null(TranscriptRecovery.TryRecover(projects, cwd, "../s1"));
    }

    [Fact]
    public void A_server_task_recovers_a_transcript_only_from_where_its_own_environment_says_never_the_servers()
    {
        // This process's CLAUDE_CONFIG_DIR holds a finished transcript of session s1.
        string config = Path.Combine(_dir, "server-config");
        string project = Path.Combine(config, "projects", TranscriptRecovery.Slug(_dir));
        Directory.CreateDirectory(project);
        File.WriteAllLines(Path.Combine(project, "s1.jsonl"), [
            """{"type":"user","message":{"role":"user","content":"q"}}""",
            """{"type":"assistant","message":{"id":"m1","content":[{"type":"text","text":"the server's own"}],"stop_reason":"end_turn"}}""",
        ]);
        string? before = Environment.GetEnvironmentVariable("CLAUDE_CONFIG_DIR");
        Environment.SetEnvironmentVariable("CLAUDE_CONFIG_DIR", config);
        try
        {
            var adapter = new ClaudeCodeAdapter(new ClaudeCodeSettings());
            // The CLI's agent inherits the variable, so its transcripts are there.
            Assert.Equal("the server's own", adapter.Prepare(Request() with { ResumeSessionId = "s1" }).Complete(null, default).Result?.Text);
            // A server task's environment is its own: it never had that variable, and nothing is read there for it.
            var task = adapter.Prepare(Request() with
            {
                ResumeSessionId = "s1",
                InheritEnvironment = false,
                Environment = new Dictionary<string, string> { ["HOME"] = Path.Combine(_dir, "home") },
            });
            Assert.False(task.Spec.InheritEnvironment);
            var outcome = task.Complete(null, default);
            Assert.Equal(AgentOutcomeKind.Lost, outcome.Kind);
            Assert.Null(outcome.Result);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CLAUDE_CONFIG_DIR", before);
        }
    }

    [Fact]
    public void The_command_agent_needs_an_argv_and_succeeds_on_exit_zero_only()
    {
        var adapter = new CommandAdapter();
        Assert.NotEmpty(adapter.Validate(Request()));
        var run = adapter.Prepare(Request() with { Command = ["echo", "x"], Prompt = null });
        Assert.Equal("echo", run.Spec.FileName);
        Assert.Equal(["x"], run.Spec.Arguments);
        Assert.False(run.KeepInputOpen);
        Assert.Null(run.InterruptInput);
        Assert.True(run.LinesAreEvents); // each line is an `output` event of its own: nothing to parse
        var ok = run.Complete(new ProcessOutcome { Pid = 1, TreeId = "t", Reason = ExitReason.Exited, ExitCode = 0, StartedAt = default, ExitedAt = default, CompletedAt = default, Containment = ContainmentKind.Session }, [.. "last"u8, 0xFF, .. " bytes"u8]);
        Assert.Equal(AgentOutcomeKind.Succeeded, ok.Kind);
        Assert.Equal("last\uFFFD bytes", ok.Result!.Text);
    }
}
