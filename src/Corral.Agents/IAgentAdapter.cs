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

    /// <summary>The CLI the agent runs (a path, or a name looked up on <c>PATH</c>); <c>null</c> when it needs none (the command agent).</summary>
    string? Executable { get; }

    /// <summary>Problems with the request for this agent (empty when it is usable). Field names are the API's.</summary>
    IReadOnlyList<string> Validate(AgentRequest request);

    /// <summary>
    /// The session id a new task of this agent will have, when the agent lets the caller choose it up front (Claude
    /// Code's <c>--session-id</c>), so the task record shows it from creation; <c>null</c> otherwise.
    /// </summary>
    string? NewSessionId(AgentRequest request) => null;

    /// <summary>Writes the per-task files (in <see cref="AgentRequest.TaskDirectory"/>, created if need be) and returns the run: what to start and how to read it.</summary>
    IAgentRun Prepare(AgentRequest request);

    /// <summary>
    /// When each task has a HOME of its own, the agent's session state is in it: keeps what a later task resuming
    /// <paramref name="sessionId"/> (as the agent of <paramref name="request"/> reported it) needs from
    /// <paramref name="home"/> in <paramref name="store"/> (a directory the server keeps). The host may be root and
    /// the HOME is the agent's: read nothing there through a link, nothing but regular files of the HOME's owner, and
    /// replace no other session's state. Nothing by default.
    /// </summary>
    void SaveSession(AgentRequest request, string sessionId, string home, string store) { }

    /// <summary>
    /// The other half of <see cref="SaveSession"/>: puts a resumed session's state into the new task's
    /// <paramref name="home"/>. Called only for a request that resumes one (<see cref="AgentRequest.ResumeSessionId"/>
    /// set). Nothing by default.
    /// </summary>
    void RestoreSession(AgentRequest request, string home, string store) { }
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

    /// <summary>
    /// Whether every output line is an event of its own (<c>output</c>), as for the command agent, instead of agent
    /// protocol: then <see cref="Parse"/> is never called, and lines cost nothing but their bytes on disk.
    /// </summary>
    bool LinesAreEvents { get; }

    /// <summary>
    /// Reads one line of output (its bytes without the line terminator, as written: not necessarily UTF-8) and returns
    /// the events it carries. <paramref name="isFragment"/> marks a piece of a line longer than the spec's
    /// <see cref="OutputLimits.MaxLineLength"/>, which cannot be a whole protocol message.
    /// </summary>
    ParsedLine Parse(OutputStream stream, ReadOnlySpan<byte> line, bool isFragment);

    /// <summary>
    /// Decides the outcome once the process is finished (<paramref name="process"/> is <c>null</c> when it never
    /// started). <paramref name="stdoutTail"/> holds the last bytes of standard output (at most <see cref="AgentRuns.TailLength"/>).
    /// </summary>
    AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail);
}

/// <summary>Constants shared by every agent run.</summary>
public static class AgentRuns
{
    /// <summary>How much of the end of standard output a run is given at completion: 64 KiB.</summary>
    public const int TailLength = 64 * 1024;
}

/// <summary>What one output line turned out to be.</summary>
/// <param name="Events">The events it carries (often none).</param>
/// <param name="IsJson">Whether it was a JSON object line of the agent's protocol (kept verbatim in the transcript).</param>
public readonly record struct ParsedLine(IReadOnlyList<AgentEvent> Events, bool IsJson);
