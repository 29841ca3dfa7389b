namespace Corral.Client;

/// <summary>The names of the agents a Corral server offers (its <c>/readyz</c> says which can take tasks now).</summary>
public static class CorralAgents
{
    /// <summary>Claude Code (<c>claude -p</c> in stream-json mode).</summary>
    public const string ClaudeCode = "claude-code";

    /// <summary>Any command line (<see cref="CreateTaskRequest.Command"/>).</summary>
    public const string Command = "command";

    /// <summary>OpenAI's Codex CLI.</summary>
    public const string Codex = "codex";

    /// <summary>Google's Gemini CLI.</summary>
    public const string Gemini = "gemini";
}
