using Corral.Agents;
using Corral.Server.Internal.Agents;
using Microsoft.Extensions.DependencyInjection;

namespace Corral.Server.Hosting;

/// <summary>Registers the agents a server offers. Adding an agent is an adapter and one call here; nothing in the task core changes.</summary>
public static class CorralAgents
{
    /// <summary>
    /// Offers an agent: tasks name it by <see cref="IAgentAdapter.Name"/>; its settings (<see cref="AgentOptions"/>) come from
    /// the configuration section <c>Corral:&lt;section&gt;</c>, and <paramref name="create"/> builds the adapter from them.
    /// </summary>
    public static IServiceCollection AddCorralAgent(this IServiceCollection services, string section, Func<AgentOptions, IAgentAdapter> create)
    {
        ArgumentException.ThrowIfNullOrEmpty(section);
        ArgumentNullException.ThrowIfNull(create);
        services.AddSingleton(new AgentRegistration(section, create));
        return services;
    }
}
