using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Agents.Internal;
using Corral.Processes;

namespace Corral.Agents.Codex;

/// <summary>
/// Runs OpenAI Codex headless: <c>codex exec --json --skip-git-repo-check [--model=M] -</c> with the prompt on stdin.
/// <c>turn.completed</c> is the success, <c>turn.failed</c> the error; the final text is the last agent message.
/// </summary>
public sealed class CodexAdapter(string executable = "codex") : IAgentAdapter
{
    /// <summary>The agent's name in the API.</summary>
    public const string AgentName = "codex";

    /// <inheritdoc />
    public string? Executable => executable;

    /// <inheritdoc />
    public string Name => AgentName;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(AgentRequest request)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(request.Prompt))
            errors.Add("prompt: required for codex.");
        if (request.Command is { Count: > 0 } || request.McpServers is not null || request.ResumeSessionId is not null
            || request.AllowedTools is not null || request.DisallowedTools is not null || request.MaxTurns is not null || request.AppendSystemPrompt is not null)
            errors.Add("codex supports prompt, model, workdir, env and limits.timeoutSeconds/stallTimeoutSeconds only.");
        return errors;
    }

    /// <inheritdoc />
    public IAgentRun Prepare(AgentRequest request)
    {
        var args = new List<string> { "exec", "--json", "--skip-git-repo-check" };
        if (request.Model is { } model)
            args.Add("--model=" + model);
        args.Add("-"); // the prompt comes from stdin
        var env = new Dictionary<string, string?>();
        foreach (var (key, value) in request.Environment ?? new Dictionary<string, string>())
            env[key] = value;
        var spec = new ProcessSpec(executable, args)
        {
            WorkingDirectory = request.WorkingDirectory,
            Environment = env,
            StandardInput = InputSource.Pipe,
            Limits = new OutputLimits { MaxLineLength = 32 << 20, Overflow = OverflowPolicy.Wait },
        };
        return new CodexRun(spec, Encoding.UTF8.GetBytes(request.Prompt!));
    }

    private sealed class CodexRun(ProcessSpec spec, byte[] prompt) : JsonLinesRun(spec, prompt, null)
    {
        private string? _lastMessage;
        private JsonElement? _completed;
        private string? _failure;

        public override bool HasResult => _completed is not null || _failure is not null;

        protected override void OnObject(JsonElement root, string? type, List<AgentEvent> events)
        {
            switch (type)
            {
                case "thread.started":
                    SessionId = root.Str("thread_id") ?? SessionId;
                    events.Add(new AgentInit(SessionId, null, null, [], [], null));
                    break;
                case "item.started" or "item.completed":
                    OnItem(root.Get("item"), type == "item.completed", events);
                    break;
                case "turn.completed":
                    _completed = root.Clone();
                    break;
                case "turn.failed":
                    _failure = root.Get("error").Str("message") ?? "The turn failed.";
                    break;
                case "error":
                    events.Add(new AgentNotice("error", root.Str("message"), root.Node()));
                    break;
            }
        }

        private void OnItem(JsonElement item, bool completed, List<AgentEvent> events)
        {
            string? id = item.Str("id");
            switch (item.Str("type"))
            {
                case "agent_message" when completed && item.Str("text") is { } text:
                    _lastMessage = text;
                    events.Add(new AgentText(id, text));
                    break;
                case "command_execution" when !completed:
                    events.Add(new AgentToolUse(id, "command_execution", new JsonObject { ["command"] = item.Str("command") }));
                    break;
                case "command_execution":
                    events.Add(new AgentToolResult(id, item.Int("exit_code") is not (0 or null), Json.Truncate(item.Str("aggregated_output") ?? "", 2000)));
                    break;
                case "mcp_tool_call" when !completed:
                    events.Add(new AgentToolUse(id, $"mcp__{item.Str("server")}__{item.Str("tool")}", item.Get("arguments").Node()));
                    break;
                case "mcp_tool_call":
                    events.Add(new AgentToolResult(id, item.Get("error").ValueKind is not (JsonValueKind.Undefined or JsonValueKind.Null),
                        Json.Truncate(item.Get("result").ValueKind == JsonValueKind.Undefined ? "" : item.Get("result").GetRawText(), 2000)));
                    break;
                case "file_change" when completed:
                    events.Add(new AgentNotice("file_change", null, item.Node()));
                    break;
                case "error" when completed:
                    events.Add(new AgentNotice("error", item.Str("message"), item.Node()));
                    break;
            }
        }

        public override AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail)
        {
            if (_failure is not null)
            {
                return new AgentOutcome
                {
                    Kind = AgentOutcomeKind.Failed,
                    Result = new AgentResult { Text = _failure, IsError = true },
                    SessionId = SessionId,
                    NonJsonLines = NonJson,
                    Message = _failure,
                };
            }

            if (_completed is { } done)
            {
                return new AgentOutcome
                {
                    Kind = AgentOutcomeKind.Succeeded,
                    Result = new AgentResult { Text = _lastMessage, Subtype = "success" },
                    SessionId = SessionId,
                    Usage = done.Get("usage").Node() as JsonObject,
                    NonJsonLines = NonJson,
                };
            }

            return Lost(process, "Codex");
        }
    }
}
