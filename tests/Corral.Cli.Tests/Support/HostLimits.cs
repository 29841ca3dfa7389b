using Corral.Processes;

namespace Corral.Cli.Tests.Support;

/// <summary>Which limits this host enforces, asked through the library's public API rather than assumed.</summary>
internal static class HostLimits
{
    private static readonly Lazy<Task<EnforcedLimits>> Enforced = new(async () =>
        (await ProcessTree.RunAsync(new ProcessSpec("/bin/true")
        {
            ResourceLimits = new ResourceLimits { MemoryMaxBytes = 1L << 30, PidsMax = 1000, CpuMax = 1 },
        })).Outcome.Resources.Enforced);

    /// <summary>What a tree with every limit set reports as enforced here.</summary>
    public static Task<EnforcedLimits> EnforcedAsync() => Enforced.Value;
}
