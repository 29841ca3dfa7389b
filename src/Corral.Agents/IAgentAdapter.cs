using Corral.Processes;

namespace Corral.Agents;

/// <summary>
/// Knows one agent CLI: how to launch it for a request. Stateless and shared; each launch gets its own
/// <see cref="IAgentRun"/>, which reads that process's output and decides its outcome.
/// </summary>
public interface IAgentAdapter
{
    /// <summary>The agent's name in the API, e.g. <c>claude-code</c>.</summary>
    string Name { get; }

    /// <summary>Problems with the request for this agent (empty when it is usable). Field names are the API's.</summary>
    IReadOnlyList<string> Validate(AgentRequest request);

    /// <summary>Writes the per-task files and returns the run: what to start and how to read it.</summary>
    IAgentRun Prepare(AgentRequest request);
}

/// <summary>One launch of an agent: the process to start, the input protocol, the output parser and the outcome.</summary>
/// <remarks>Called from one reader at a time; not thread-safe.</remarks>
public interface IAgentRun
{
    /// <summary>The process to start (argv, working directory, environment, stdin as a pipe).</summary>
    ProcessSpec Spec { get; }

    /// <summary>The session id as known so far (from the request, then from the agent's own output).</summary>
    string? SessionId { get; }

    /// <summary>Bytes written to stdin right after the start.</summary>
    ReadOnlyMemory<byte> InitialInput { get; }

    /// <summary>
    /// Whether stdin stays open after <see cref="InitialInput"/> until <see cref="HasResult"/> (so that an interrupt
    /// can still be sent); otherwise it is closed right after the initial input.
    /// </summary>
    bool KeepInputOpen { get; }

    /// <summary>A line that asks the agent to stop the turn and still report a result, or <c>null</c> when it has none.</summary>
    ReadOnlyMemory<byte>? InterruptInput { get; }

    /// <summary>Whether the agent has reported its final result (after which it is expected to exit).</summary>
    bool HasResult { get; }

    /// <summary>Reads one line of output and returns the events it carries.</summary>
    ParsedLine Parse(OutputLine line);

    /// <summary>Decides the outcome once the process is finished (<paramref name="process"/> is <c>null</c> when it never started).</summary>
    AgentOutcome Complete(ProcessOutcome? process);
}

/// <summary>What one output line turned out to be.</summary>
/// <param name="Events">The events it carries (often none).</param>
/// <param name="IsJson">Whether it was a JSON object line of the agent's protocol (kept verbatim in the transcript).</param>
public readonly record struct ParsedLine(IReadOnlyList<AgentEvent> Events, bool IsJson);
