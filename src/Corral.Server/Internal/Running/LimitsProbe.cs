using Corral.Processes;
using Corral.Server.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Running;

/// <summary>
/// At start, runs one tree with every limit and says in the log which ones this host cannot enforce: there a task's
/// limits are only recorded (<c>process.resources.enforced</c>), and one task's fork bomb or memory hog hurts all.
/// </summary>
internal sealed class LimitsProbe(IOptions<CorralOptions> options, ILogger<LimitsProbe> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var spec = new ProcessSpec("/bin/true")
        {
            InheritEnvironment = false,
            WorkingDirectory = "/",
            Containment = options.Value.Containment,
            ResourceLimits = new ResourceLimits { MemoryMaxBytes = 1L << 40, PidsMax = 1 << 20, CpuMax = 1024 },
        };
        try
        {
            var enforced = (await ProcessTree.RunAsync(spec, cancellationToken).ConfigureAwait(false)).Outcome.Resources.Enforced;
            if (Missing(enforced) is { Length: > 0 } missing)
                logger.LogWarning("This host cannot enforce tasks' {Limits} limits (no such cgroup v2 controller Corral may use): a task's limits are only recorded, " +
                    "as not enforced in process.resources.enforced, and one task can exhaust the host for the others. Delegate the memory, pids and cpu controllers to Corral's cgroup to enforce them",
                    missing);
        }
        catch (ProcessSpawnException e)
        {
            logger.LogWarning(e, "The start-up probe of resource limits could not run");
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The limits not enforced, as a list for people (<c>memory, pids</c>); empty when all are.</summary>
    internal static string Missing(EnforcedLimits enforced) =>
        string.Join(", ", new[] { ("memory", enforced.Memory), ("pids", enforced.Pids), ("cpu", enforced.Cpu) }.Where(l => !l.Item2).Select(l => l.Item1));
}
