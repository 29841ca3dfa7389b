using System.Text.Json.Nodes;

namespace Corral.Agents;

/// <summary>What one task asks an agent to do. Adapters use the fields that apply to them.</summary>
public sealed record AgentRequest
{
    /// <summary>The prompt (Claude Code: sent as a stream-json user message on stdin; command: written to stdin when set).</summary>
    public string? Prompt { get; init; }

    /// <summary>The argv to run, for the command agent.</summary>
    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>The absolute working directory of the agent process. Must exist.</summary>
    public required string WorkingDirectory { get; init; }

    /// <summary>A directory owned by this task, for files the adapter writes (e.g. the MCP configuration).</summary>
    public required string TaskDirectory { get; init; }

    /// <summary>The session id to start a new Claude session with (a UUID); ignored when <see cref="ResumeSessionId"/> is set.</summary>
    public string? NewSessionId { get; init; }

    /// <summary>An existing session to resume.</summary>
    public string? ResumeSessionId { get; init; }

    /// <summary>The model alias or id.</summary>
    public string? Model { get; init; }

    /// <summary>The maximum number of agent turns.</summary>
    public int? MaxTurns { get; init; }

    /// <summary>The permission mode, e.g. <c>acceptEdits</c>.</summary>
    public string? PermissionMode { get; init; }

    /// <summary>Tool rules that are allowed without asking.</summary>
    public IReadOnlyList<string>? AllowedTools { get; init; }

    /// <summary>Tool rules that are denied.</summary>
    public IReadOnlyList<string>? DisallowedTools { get; init; }

    /// <summary>Text appended to the agent's system prompt.</summary>
    public string? AppendSystemPrompt { get; init; }

    /// <summary>Claude's <c>mcpServers</c> object: server name → <c>{command, args, env}</c> (or a remote server).</summary>
    public JsonObject? McpServers { get; init; }

    /// <summary>Extra environment variables for the agent process (all of them when <see cref="InheritEnvironment"/> is off).</summary>
    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>
    /// Whether the agent process inherits this process's environment beneath <see cref="Environment"/> (the CLI), or
    /// gets <see cref="Environment"/> alone (the server builds each task's). Adapters read variables, such as where the
    /// agent keeps its state, from what the process will really see. Default: on.
    /// </summary>
    public bool InheritEnvironment { get; init; } = true;
}
