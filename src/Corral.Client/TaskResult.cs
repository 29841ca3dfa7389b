namespace Corral.Client;

/// <summary>The agent's result.</summary>
public sealed record TaskResult
{
    /// <summary>The final text (Claude's <c>result</c>; a command's stdout tail).</summary>
    public string? Text { get; init; }

    /// <summary>Claude's result subtype, e.g. <c>success</c> or <c>error_max_turns</c>.</summary>
    public string? Subtype { get; init; }

    /// <summary>Whether the agent flagged the result as an error.</summary>
    public bool IsError { get; init; }

    /// <summary>Number of turns, when reported.</summary>
    public int? NumTurns { get; init; }

    /// <summary>Whether the result was rebuilt from the session transcript because the output had none.</summary>
    public bool Recovered { get; init; }

    /// <summary>Claude's <c>terminal_reason</c>, e.g. <c>completed</c>.</summary>
    public string? TerminalReason { get; init; }

    /// <summary>The HTTP status of an API error inside the agent (401, 429, 529, …).</summary>
    public int? ApiErrorStatus { get; init; }
}
