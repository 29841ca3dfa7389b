using System.Text;
using Corral.Processes;

namespace Corral.Agents.Command;

/// <summary>Runs any argv: output lines become events and the exit code decides success.</summary>
public sealed class CommandAdapter : IAgentAdapter
{
    /// <summary>The agent's name in the API.</summary>
    public const string AgentName = "command";

    /// <inheritdoc />
    public string Name => AgentName;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(AgentRequest request)
    {
        var errors = new List<string>();
        if (request.Command is not { Count: > 0 } || string.IsNullOrEmpty(request.Command[0]))
            errors.Add("command: required for the command agent (an argv array).");
        else if (request.Command.Any(a => a is null || a.Contains('\0')))
            errors.Add("command: arguments must be strings without NUL characters.");
        if (request.McpServers is not null || request.ResumeSessionId is not null || request.Model is not null)
            errors.Add("mcpServers, resumeSessionId and model are not supported by the command agent.");
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
            Limits = new OutputLimits { MaxLineLength = 32 << 20, Overflow = OverflowPolicy.Wait },
        };
        return new CommandRun(spec, request.Prompt is null ? default : Encoding.UTF8.GetBytes(request.Prompt));
    }

    private sealed class CommandRun(ProcessSpec spec, ReadOnlyMemory<byte> input) : IAgentRun
    {
        private const int TailLength = 64 * 1024;
        private readonly StringBuilder _tail = new();

        public ProcessSpec Spec { get; } = spec;

        public string? SessionId => null;

        public ReadOnlyMemory<byte> InitialInput { get; } = input;

        public bool KeepInputOpen => false;

        public ReadOnlyMemory<byte>? InterruptInput => null;

        public bool HasResult => false;

        public ParsedLine Parse(OutputLine line)
        {
            bool stdout = line.Stream == OutputStream.StandardOutput;
            if (stdout)
            {
                _tail.Append(line.Text);
                if (!line.IsFragment)
                    _tail.Append('\n');
                if (_tail.Length > TailLength * 2)
                    _tail.Remove(0, _tail.Length - TailLength);
            }

            return new([new CommandOutput(stdout ? "stdout" : "stderr", line.Text)], false);
        }

        public AgentOutcome Complete(ProcessOutcome? process)
        {
            string text = _tail.Length > TailLength ? _tail.ToString(_tail.Length - TailLength, TailLength) : _tail.ToString();
            bool ok = process is { ExitCode: 0 };
            string? message = process is null ? "The command never started."
                : ok ? null
                : process.Signal is { } sig ? $"The command was killed by signal {sig}." : $"The command exited with code {process.ExitCode}.";
            return new AgentOutcome
            {
                Kind = ok ? AgentOutcomeKind.Succeeded : AgentOutcomeKind.Failed,
                Result = process is null ? null : new AgentResult { Text = text, IsError = !ok },
                Message = message,
            };
        }
    }
}
