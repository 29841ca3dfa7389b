using System.Text;
using System.Text.Json;
using Corral.Processes;

namespace Corral.Agents.Internal;

/// <summary>
/// The common shape of an agent that prints one JSON object per line with a <c>type</c> field: non-JSON lines are
/// counted and surfaced as notices, stderr lines become <see cref="AgentStderr"/>, the rest is the subclass's.
/// </summary>
internal abstract class JsonLinesRun(ProcessSpec spec, ReadOnlyMemory<byte> initialInput, string? sessionId) : IAgentRun
{
    private const int PreviewLength = 2000;

    protected int NonJson { get; private set; }

    public ProcessSpec Spec { get; } = spec;

    public string? SessionId { get; protected set; } = sessionId;

    public ReadOnlyMemory<byte> InitialInput { get; } = initialInput;

    public virtual bool KeepInputOpen => false;

    public virtual ReadOnlyMemory<byte>? InterruptInput => null;

    public abstract bool HasResult { get; }

    public bool LinesAreEvents => false;

    public ParsedLine Parse(OutputStream stream, ReadOnlySpan<byte> line, bool isFragment)
    {
        if (stream == OutputStream.StandardError)
            return new([new AgentStderr(Json.Decode(line))], false);
        using var doc = isFragment ? null : Json.TryParseObject(line);
        if (doc is null)
        {
            NonJson++;
            return line.TrimEnd((byte)'\r').IsEmpty ? new([], false) : new([new AgentNotice("non_json", Json.Decode(line, PreviewLength))], false);
        }

        var events = new List<AgentEvent>();
        OnObject(doc.RootElement, doc.RootElement.Str("type"), events);
        return new(events, true);
    }

    /// <summary>Handles one JSON line; unknown types must be ignored.</summary>
    protected abstract void OnObject(JsonElement root, string? type, List<AgentEvent> events);

    public abstract AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail);

    protected AgentOutcome Lost(ProcessOutcome? process, string agent, string? detail = null)
    {
        string how = process is null ? "never started"
            : process.Signal is { } sig ? $"was killed by signal {sig}" : $"exited with code {process.ExitCode}";
        return new AgentOutcome
        {
            Kind = AgentOutcomeKind.Lost,
            SessionId = SessionId,
            NonJsonLines = NonJson,
            Message = $"{agent} {how} without a final result{detail}.",
        };
    }

    protected static string Text(JsonElement message)
    {
        var sb = new StringBuilder();
        foreach (var block in message.Get("content").Items())
        {
            if (block.Str("type") == "text")
                sb.Append(block.Str("text"));
        }

        return sb.ToString();
    }
}
