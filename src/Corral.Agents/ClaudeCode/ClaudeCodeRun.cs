using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Agents.Internal;
using Corral.Processes;

namespace Corral.Agents.ClaudeCode;

/// <summary>One Claude Code process: parses stream-json by <c>type</c>, keeps the latest result, recovers a lost one.</summary>
internal sealed class ClaudeCodeRun(ProcessSpec spec, byte[] userLine, string? sessionId, string workingDirectory, (string Home, string Projects)? transcripts)
    : JsonLinesRun(spec, userLine, sessionId)
{
    private const int PreviewLength = 2000;

    private readonly string _requestedSessionId = sessionId ?? "";
    private string? _cwd;
    private JsonElement? _result;

    public override bool KeepInputOpen => true;

    public override ReadOnlyMemory<byte>? InterruptInput { get; } = ClaudeCodeAdapter.InterruptLine("corral_interrupt_1");

    public override bool HasResult => _result is not null;

    protected override void OnObject(JsonElement root, string? type, List<AgentEvent> events)
    {
        if (root.Str("session_id") is { Length: > 0 } sid)
            SessionId = sid;

        switch (type)
        {
            case "system":
                OnSystem(root, events);
                break;
            case "assistant":
                OnAssistant(root, events);
                break;
            case "user":
                OnUser(root, events);
                break;
            case "result":
                // Cumulative per process: the latest one is the truth.
                _result = root.Clone();
                break;
            case "rate_limit_event":
                events.Add(new AgentNotice("rate_limit", null, root.Node()));
                break;
            default:
                // stream_event, control_response, control_request and types not invented yet: kept in the transcript only.
                break;
        }
    }

    private void OnSystem(JsonElement root, List<AgentEvent> events)
    {
        string subtype = root.Str("subtype") ?? "system";
        if (subtype == "init")
        {
            _cwd = root.Str("cwd") ?? _cwd;
            var tools = root.Get("tools").Items().Where(t => t.ValueKind == JsonValueKind.String).Select(t => t.GetString()!).ToList();
            var mcp = root.Get("mcp_servers").Items().Select(s => new McpServerStatus(s.Str("name") ?? "", s.Str("status"))).ToList();
            events.Add(new AgentInit(root.Str("session_id"), root.Str("model"), root.Str("cwd"), tools, mcp, root.Str("claude_code_version")));
            return;
        }

        events.Add(new AgentNotice(subtype, root.Str("message") ?? root.Str("error"), root.Node()));
    }

    private static void OnAssistant(JsonElement root, List<AgentEvent> events)
    {
        var message = root.Get("message");
        string? messageId = message.Str("id");
        if (root.Get("error").ValueKind != JsonValueKind.Undefined || root.Bool("is_api_error_message"))
            events.Add(new AgentNotice("api_error", Text(message), root.Node()));

        foreach (var block in message.Get("content").Items())
        {
            switch (block.Str("type"))
            {
                case "text" when block.Str("text") is { } text:
                    events.Add(new AgentText(messageId, text));
                    break;
                case "tool_use" or "server_tool_use":
                    events.Add(new AgentToolUse(block.Str("id"), block.Str("name"), block.Get("input").Node()));
                    break;
            }
        }
    }

    private static void OnUser(JsonElement root, List<AgentEvent> events)
    {
        var content = root.Get("message").Get("content");
        if (content.ValueKind == JsonValueKind.String)
        {
            if (content.GetString() is { } s && s.StartsWith("[Request interrupted", StringComparison.Ordinal))
                events.Add(new AgentNotice("interrupted", s));
            return;
        }

        foreach (var block in content.Items())
        {
            if (block.Str("type") == "tool_result")
            {
                events.Add(new AgentToolResult(block.Str("tool_use_id"), block.Bool("is_error"), Json.Truncate(Flatten(block.Get("content")), PreviewLength)));
            }
            else if (block.Str("type") == "text" && block.Str("text") is { } t && t.StartsWith("[Request interrupted", StringComparison.Ordinal))
            {
                events.Add(new AgentNotice("interrupted", t));
            }
        }
    }

    private static string Flatten(JsonElement content) => content.ValueKind switch
    {
        JsonValueKind.String => content.GetString() ?? "",
        JsonValueKind.Array => string.Join("\n", content.EnumerateArray().Select(b => b.Str("text") ?? b.GetRawText())),
        JsonValueKind.Undefined or JsonValueKind.Null => "",
        _ => content.GetRawText(),
    };

    public override AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail)
    {
        if (_result is { } r)
        {
            // The result line is authoritative: an exit 1 or 143 after it changes nothing.
            bool isError = r.Bool("is_error");
            var errors = r.Get("errors").Items().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString() : e.GetRawText()).ToList();
            string? text = r.Str("result") ?? (errors.Count > 0 ? string.Join("\n", errors) : null);
            JsonObject? usage = null;
            if (r.Get("usage").Node() is JsonObject u)
                usage = u;
            if (r.Get("modelUsage").Node() is JsonObject mu)
                (usage ??= [])["modelUsage"] = mu;
            return new AgentOutcome
            {
                Kind = isError ? AgentOutcomeKind.Failed : AgentOutcomeKind.Succeeded,
                Result = new AgentResult
                {
                    Text = text,
                    Subtype = r.Str("subtype"),
                    IsError = isError,
                    NumTurns = r.Int("num_turns"),
                    TerminalReason = r.Str("terminal_reason"),
                    ApiErrorStatus = r.Int("api_error_status"),
                },
                SessionId = r.Str("session_id") ?? SessionId,
                Usage = usage,
                CostUsd = r.Double("total_cost_usd"),
                DurationMs = r.Long("duration_ms"),
                NonJsonLines = NonJson,
                Message = isError ? text : null,
            };
        }

        string? sid = SessionId is { Length: > 0 } ? SessionId : _requestedSessionId;
        if (transcripts is { } at && sid is { Length: > 0 }
            && TranscriptRecovery.TryRecover(at.Home, at.Projects, _cwd ?? workingDirectory, sid) is { } recovered)
        {
            return new AgentOutcome
            {
                Kind = AgentOutcomeKind.Succeeded,
                Result = new AgentResult { Text = recovered.Text, Subtype = "success", NumTurns = null, Recovered = true, TerminalReason = "completed" },
                SessionId = sid,
                Usage = recovered.Usage,
                NonJsonLines = NonJson,
            };
        }

        return Lost(process, "Claude Code", ", and the session transcript has no final answer") with { SessionId = sid };
    }
}
