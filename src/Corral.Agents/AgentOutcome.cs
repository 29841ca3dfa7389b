using System.Text.Json.Nodes;

namespace Corral.Agents;

/// <summary>How an agent run ended, as the agent itself tells it (deadlines and cancels are the caller's business).</summary>
public enum AgentOutcomeKind
{
    /// <summary>The agent reported success.</summary>
    Succeeded,

    /// <summary>The agent reported an error (error result, non-zero exit of a command).</summary>
    Failed,

    /// <summary>The agent ended without a result and none could be recovered.</summary>
    Lost,
}

/// <summary>The agent's final result.</summary>
public sealed record AgentResult
{
    /// <summary>The final text (Claude's <c>result</c>, or its <c>errors</c> joined; a command's stdout tail).</summary>
    public string? Text { get; init; }

    /// <summary>Claude's result subtype, e.g. <c>success</c> or <c>error_max_turns</c>.</summary>
    public string? Subtype { get; init; }

    /// <summary>Whether the agent flagged the result as an error.</summary>
    public bool IsError { get; init; }

    /// <summary>Number of turns, when reported.</summary>
    public int? NumTurns { get; init; }

    /// <summary>Whether the result was rebuilt from the session transcript because the output had none.</summary>
    public bool Recovered { get; init; }

    /// <summary>Claude's <c>terminal_reason</c>, e.g. <c>completed</c> or <c>aborted_tools</c>.</summary>
    public string? TerminalReason { get; init; }

    /// <summary>The HTTP status of an API error inside the agent (401, 429, 529, …).</summary>
    public int? ApiErrorStatus { get; init; }
}

/// <summary>The outcome of one agent run.</summary>
public sealed record AgentOutcome
{
    /// <summary>How it ended.</summary>
    public required AgentOutcomeKind Kind { get; init; }

    /// <summary>The result, when there is one.</summary>
    public AgentResult? Result { get; init; }

    /// <summary>The session id, when the agent has sessions.</summary>
    public string? SessionId { get; init; }

    /// <summary>Token usage as the agent reported it (Claude: <c>usage</c> plus <c>modelUsage</c>).</summary>
    public JsonObject? Usage { get; init; }

    /// <summary>Total cost in US dollars, when reported.</summary>
    public double? CostUsd { get; init; }

    /// <summary>The agent's own duration, when reported.</summary>
    public long? DurationMs { get; init; }

    /// <summary>Stdout lines that were not JSON (kept in the transcript).</summary>
    public int NonJsonLines { get; init; }

    /// <summary>Why it failed or was lost, for people.</summary>
    public string? Message { get; init; }
}
