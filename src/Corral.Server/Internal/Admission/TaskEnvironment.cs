using Corral.Server.Hosting;
using Corral.Server.Internal.Secrets;

namespace Corral.Server.Internal.Admission;

/// <summary>The server's own environment, read once at start.</summary>
internal sealed class ServerEnvironment(IReadOnlyDictionary<string, string> variables)
{
    public static ServerEnvironment Current()
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
            variables[(string)e.Key] = (string?)e.Value ?? "";
        return new ServerEnvironment(variables);
    }

    public string? this[string name] => variables.GetValueOrDefault(name);
}

/// <summary>
/// A task's environment is built, never inherited: the minimal variables (<see cref="Minimal"/>, taken from the
/// server's), the task id, then what the operator allows for its agent (values, and names passed from the server's
/// environment), then the request's own. Never the token, never anything else of the server's.
/// </summary>
internal static class TaskEnvironment
{
    /// <summary>The task's id, in its environment.</summary>
    public const string TaskIdVariable = "CORRAL_TASK_ID";

    /// <summary>What every task gets from the server's environment, when the server has it.</summary>
    public static readonly string[] Minimal = ["PATH", "HOME", "LANG", "TZ", "USER", "LOGNAME", "TERM"];

    /// <summary>Names a request may not set: Corral's own, and the token's.</summary>
    public static readonly string[] Reserved = [TaskIdVariable, "CORRAL_TREE_ID", CorralServer.TokenVariable];

    /// <summary>The environment and the secrets to mask for a task of an agent with <paramref name="agent"/> settings.</summary>
    /// <remarks><paramref name="own"/>: a task with a uid of its own gets its own HOME and TMPDIR (the request may still set them).</remarks>
    public static (Dictionary<string, string> Variables, List<KeyValuePair<string, string>> Secrets) Build(
        string taskId, AgentOptions agent, IReadOnlyDictionary<string, string>? env, IReadOnlyDictionary<string, string>? secrets, ServerEnvironment server,
        (string Home, string Tmp)? own = null)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (string name in Minimal)
        {
            if (server[name] is { } value)
                variables[name] = value;
        }

        variables.TryAdd("LANG", "C.UTF-8");
        if (own is { } dirs)
        {
            variables["HOME"] = dirs.Home;
            variables["TMPDIR"] = dirs.Tmp;
        }

        foreach (var (name, value) in agent.Environment)
            variables[name] = value;
        foreach (string name in agent.PassEnvironment)
        {
            if (server[name] is { } value)
                variables[name] = value;
        }

        var masked = new List<KeyValuePair<string, string>>();
        foreach (var (name, value) in agent.Secrets)
        {
            variables[name] = value;
            masked.Add(new(name, value));
        }

        foreach (string name in agent.PassSecrets)
        {
            if (server[name] is { } value)
            {
                variables[name] = value;
                masked.Add(new(name, value));
            }
        }

        foreach (var (name, value) in env ?? new Dictionary<string, string>())
            variables[name] = value;
        foreach (var (name, value) in secrets ?? new Dictionary<string, string>())
        {
            variables[name] = value;
            masked.Add(new(name, value));
        }

        foreach (string name in Reserved)
            variables.Remove(name);
        variables[TaskIdVariable] = taskId;
        return (variables, masked);
    }
}
