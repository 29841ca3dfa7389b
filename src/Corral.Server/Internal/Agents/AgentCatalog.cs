using Corral.Agents;
using Corral.Server.Hosting;
using Microsoft.Extensions.Configuration;

namespace Corral.Server.Internal.Agents;

/// <summary>An agent as registered: its configuration section and how to build its adapter.</summary>
internal sealed record AgentRegistration(string Section, Func<AgentOptions, IAgentAdapter> Create);

/// <summary>An agent the server offers: its adapter and its settings.</summary>
internal sealed record CatalogEntry(IAgentAdapter Adapter, AgentOptions Options);

/// <summary>Whether an agent can take a task now.</summary>
/// <param name="Agent">The agent's name.</param>
/// <param name="Available">Whether it can.</param>
/// <param name="Reason">Why not.</param>
internal sealed record AgentAvailability(string Agent, bool Available, string? Reason);

/// <summary>The agents by name, built once from the registrations and their configuration sections.</summary>
internal sealed class AgentCatalog
{
    private readonly Dictionary<string, CatalogEntry> _entries = new(StringComparer.Ordinal);

    public AgentCatalog(IEnumerable<AgentRegistration> registrations, IConfiguration configuration)
    {
        foreach (var registration in registrations)
        {
            var options = configuration.GetSection(CorralOptions.Section + ":" + registration.Section).Get<AgentOptions>() ?? new AgentOptions();
            var adapter = registration.Create(options);
            _entries[adapter.Name] = new CatalogEntry(adapter, options);
        }
    }

    public IEnumerable<string> Names => _entries.Keys;

    public CatalogEntry? Find(string name) => _entries.GetValueOrDefault(name);

    /// <summary>Whether <paramref name="name"/> can take tasks: known, enabled, and its CLI found.</summary>
    public AgentAvailability Availability(string name)
    {
        if (!_entries.TryGetValue(name, out var entry))
            return new(name, false, $"Unknown agent '{name}'.");
        if (!entry.Options.Enabled)
            return new(name, false, $"The {name} agent is disabled by configuration.");
        if (entry.Adapter.Executable is { } exe && ExecutableLocator.Find(exe) is null)
            return new(name, false, $"The {name} CLI '{exe}' was not found.");
        return new(name, true, null);
    }
}

/// <summary>Finds an executable the way <c>execvp</c> would.</summary>
internal static class ExecutableLocator
{
    public static string? Find(string name)
    {
        if (name.Contains('/'))
            return IsExecutable(name) ? Path.GetFullPath(name) : null;
        foreach (string dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            string candidate = Path.Combine(dir, name);
            if (IsExecutable(candidate))
                return candidate;
        }

        return null;
    }

    private static bool IsExecutable(string path)
    {
        try
        {
            return File.Exists(path) && (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
