using System.Text.Json.Nodes;

namespace Corral.Client;

/// <summary>
/// The body of <c>POST /v1/tasks</c>. Fields left <c>null</c> are not sent (the server's defaults apply). The server
/// rejects fields it does not know, so only what is set here reaches it.
/// </summary>
public sealed record CreateTaskRequest
{
    /// <summary><c>claude-code</c>, <c>command</c>, <c>codex</c> or <c>gemini</c> (see <see cref="CorralAgents"/>).</summary>
    public string? Agent { get; init; }

    /// <summary>The prompt (required for claude-code; written to stdin for the command agent).</summary>
    public string? Prompt { get; init; }

    /// <summary>The argv, for the command agent: a program and its arguments, never a shell line.</summary>
    public IReadOnlyList<string>? Command { get; init; }

    /// <summary>The working directory: absolute (must exist on the server) or relative to its workspace root. Default: a fresh directory per task.</summary>
    public string? Workdir { get; init; }

    /// <summary>The model.</summary>
    public string? Model { get; init; }

    /// <summary>A Claude session to resume. The server runs one queued or running task per session.</summary>
    public string? ResumeSessionId { get; init; }

    /// <summary>Text appended to the system prompt.</summary>
    public string? AppendSystemPrompt { get; init; }

    /// <summary>Deadlines, turn limit and output cap.</summary>
    public TaskLimits? Limits { get; init; }

    /// <summary>Tool permissions.</summary>
    public TaskPermissions? Permissions { get; init; }

    /// <summary>Claude's <c>mcpServers</c> object.</summary>
    public JsonObject? McpServers { get; init; }

    /// <summary>Extra environment variables for the agent.</summary>
    public IReadOnlyDictionary<string, string>? Env { get; init; }

    /// <summary>
    /// Secret environment variables (name → value, at least 4 characters): the server never stores their values and
    /// masks them as <c>[secret:NAME]</c> wherever the task's output is kept or sent.
    /// </summary>
    public IReadOnlyDictionary<string, string>? Secrets { get; init; }

    /// <summary>
    /// The same key returns the same task (1 to 200 characters), and makes the create safe to retry. When <c>null</c>,
    /// the client makes one up for each call unless <see cref="CorralClientOptions.GenerateIdempotencyKeys"/> is off.
    /// </summary>
    public string? IdempotencyKey { get; init; }

    /// <summary>Anything the caller wants kept with the task.</summary>
    public JsonObject? Metadata { get; init; }

    /// <summary>Where the server POSTs the task's final record, signed (see <see cref="TaskWebhook"/>).</summary>
    public TaskWebhook? Webhook { get; init; }

    /// <summary>A task of the command agent that runs <paramref name="program"/> with <paramref name="arguments"/>.</summary>
    /// <param name="program">The program (found on the server's <c>PATH</c> when it has no slash).</param>
    /// <param name="arguments">Its arguments.</param>
    public static CreateTaskRequest ForCommand(string program, params IEnumerable<string> arguments) =>
        new() { Agent = CorralAgents.Command, Command = [program, .. arguments] };

    /// <summary>A task of <paramref name="agent"/> with <paramref name="prompt"/>, e.g. <c>ForPrompt(CorralAgents.ClaudeCode, "Fix the test")</c>.</summary>
    /// <param name="agent">The agent's name.</param>
    /// <param name="prompt">The prompt.</param>
    public static CreateTaskRequest ForPrompt(string agent, string prompt) => new() { Agent = agent, Prompt = prompt };
}
