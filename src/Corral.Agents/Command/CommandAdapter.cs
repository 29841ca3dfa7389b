using System.Text;
using Corral.Processes;

namespace Corral.Agents.Command;

/// <summary>Runs any argv: every output line is an <c>output</c> event, the exit code decides success, and the result text is the end of stdout.</summary>
public sealed class CommandAdapter : IAgentAdapter
{
    /// <summary>The agent's name in the API.</summary>
    public const string AgentName = "command";

    /// <summary>Lines longer than this (1 MiB) are events in pieces, each flagged as a fragment; the bytes are stored whole.</summary>
    public const int MaxLineLength = 1 << 20;

    /// <inheritdoc />
    public string Name => AgentName;

    /// <inheritdoc />
    public string? Executable => null;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(AgentRequest request)
    {
        var errors = new List<string>();
        if (request.Command is not { Count: > 0 })
            errors.Add("command: required for the command agent (an argv array).");
        else if (request.Command[0] is null or "")
            errors.Add("command[0]: the program to run, a non-empty string.");
        else if (request.Command.Any(a => a is null || a.Contains('\0')))
            errors.Add("command: arguments must be strings without NUL characters.");
        if (request.McpServers is not null || request.ResumeSessionId is not null || request.Model is not null || request.AppendSystemPrompt is not null
            || request.PermissionMode is not null || request.AllowedTools is not null || request.DisallowedTools is not null || request.MaxTurns is not null)
            errors.Add("mcpServers, resumeSessionId, model, appendSystemPrompt, permissions and limits.maxTurns are not supported by the command agent.");
        return errors;
    }

    /// <inheritdoc />
    public IAgentRun Prepare(AgentRequest request)
    {
        var env = new Dictionary<string, string?>();
        foreach (var (key, value) in request.Environment ?? new Dictionary<string, string>())
            env[key] = value;
        var spec = new ProcessSpec(request.Command![0], request.Command.Skip(1).ToArray())
        {
            WorkingDirectory = request.WorkingDirectory,
            Environment = env,
            StandardInput = InputSource.Pipe,
            Limits = new OutputLimits { MaxLineLength = MaxLineLength, Overflow = OverflowPolicy.Wait },
        };
        return new CommandRun(spec, request.Prompt is null ? default : Encoding.UTF8.GetBytes(request.Prompt));
    }

    private sealed class CommandRun(ProcessSpec spec, ReadOnlyMemory<byte> input) : IAgentRun
    {
        public ProcessSpec Spec { get; } = spec;

        public string? SessionId => null;

        public ReadOnlyMemory<byte> InitialInput { get; } = input;

        public bool KeepInputOpen => false;

        public ReadOnlyMemory<byte>? InterruptInput => null;

        public bool HasResult => false;

        public bool LinesAreEvents => true;

        public ParsedLine Parse(OutputStream stream, ReadOnlySpan<byte> line, bool isFragment) => new([], false);

        public AgentOutcome Complete(ProcessOutcome? process, ReadOnlySpan<byte> stdoutTail)
        {
            bool ok = process is { ExitCode: 0 };
            string? message = process is null ? "The command never started."
                : ok ? null
                : process.Signal is { } sig ? $"The command was killed by signal {sig}." : $"The command exited with code {process.ExitCode}.";
            return new AgentOutcome
            {
                Kind = ok ? AgentOutcomeKind.Succeeded : AgentOutcomeKind.Failed,
                Result = process is null ? null : new AgentResult { Text = Encoding.UTF8.GetString(stdoutTail), IsError = !ok },
                Message = message,
            };
        }
    }
}
