using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Agents.Internal;
using Corral.Processes;

namespace Corral.Agents.Gemini;

/// <summary>
/// Runs Gemini CLI headless: <c>gemini --output-format stream-json [--model=M] --prompt=&lt;prompt&gt;</c> (the
/// <c>=</c> form, so a prompt starting with '-' stays a value). The <c>result</c> line decides the outcome.
/// </summary>
public sealed class GeminiAdapter(string executable = "gemini") : IAgentAdapter
{
    /// <summary>The agent's name in the API.</summary>
    public const string AgentName = "gemini";

    /// <summary>Longest prompt accepted: it travels as one argument, and Linux caps one argument at 128 KiB.</summary>
    public const int MaxPromptBytes = 100 * 1024;

    /// <inheritdoc />
    public string? Executable => executable;

    /// <inheritdoc />
    public string Name => AgentName;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(AgentRequest request)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(request.Prompt))
            errors.Add("prompt: required for gemini.");
        else if (Encoding.UTF8.GetByteCount(request.Prompt) > MaxPromptBytes)
            errors.Add($"prompt: at most {MaxPromptBytes} bytes for gemini.");
        if (request.Command is { Count: > 0 } || request.McpServers is not null || request.ResumeSessionId is not null
            || request.AllowedTools is not null || request.DisallowedTools is not null || request.MaxTurns is not null || request.AppendSystemPrompt is not null)
            errors.Add("gemini supports prompt, model, workdir, env and limits.timeoutSeconds/stallTimeoutSeconds only.");
        return errors;
    }

    /// <inheritdoc />
    public IAgentRun Prepare(AgentRequest request)
    {
        var args = new List<string> { "--output-format", "stream-json" };
        if (request.Model is { } model)
            args.Add("--model=" + model);
        args.Add("--prompt=" + request.Prompt);
        var env = new Dictionary<string, string?>();
        foreach (var (key, value) in request.Environment ?? new Dictionary<string, string>())
            env[key] = value;
        var spec = new ProcessSpec(executable, args)
        {
            WorkingDirectory = request.WorkingDirectory,
            Environment = env,
            StandardInput = InputSource.Pipe, // closed at once: EOF, so it never waits for piped input
            Limits = new OutputLimits { MaxLineLength = 32 << 20, Overflow = OverflowPolicy.Wait },
        };
        return new GeminiRun(spec);
    }

    private sealed class GeminiRun(ProcessSpec spec) : JsonLinesRun(spec, default, null)
    {
        private readonly StringBuilder _text = new();
        private JsonElement? _result;

        public override bool HasResult => _result is not null;

        protected override void OnObject(JsonElement root, string? type, List<AgentEvent> events)
        {
            switch (type)
            {
                case "init":
                    SessionId = root.Str("session_id") ?? SessionId;
                    events.Add(new AgentInit(SessionId, root.Str("model"), null, [], [], null));
                    break;
                case "message" when root.Str("role") == "assistant" && root.Str("content") is { } content:
                    _text.Append(content);
                    events.Add(new AgentText(null, content));
                    break;
                case "tool_use":
                    events.Add(new AgentToolUse(root.Str("tool_id"), root.Str("tool_name"), root.Get("parameters").Node()));
                    break;
                case "tool_result":
                    events.Add(new AgentToolResult(root.Str("tool_id"), root.Str("status") == "error",
                        Json.Truncate(root.Str("output") ?? root.Get("error").Str("message") ?? "", 2000)));
                    break;
                case "error":
                    events.Add(new AgentNotice("error", root.Str("message"), root.Node()));
                    break;
                case "result":
                    _result = root.Clone();
                    break;
            }
        }

        public override AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail)
        {
            if (_result is not { } r)
                return Lost(process, "Gemini CLI");
            bool ok = r.Str("status") == "success";
            string? error = r.Get("error").Str("message") ?? r.Get("error").Str("type");
            var stats = r.Get("stats");
            return new AgentOutcome
            {
                Kind = ok ? AgentOutcomeKind.Succeeded : AgentOutcomeKind.Failed,
                Result = new AgentResult { Text = ok ? _text.ToString() : error ?? _text.ToString(), Subtype = r.Str("status"), IsError = !ok },
                SessionId = SessionId,
                Usage = stats.Node() as JsonObject,
                DurationMs = stats.Long("duration_ms"),
                NonJsonLines = NonJson,
                Message = ok ? null : error ?? "Gemini CLI reported an error.",
            };
        }
    }
}
