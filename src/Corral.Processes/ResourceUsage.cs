using System.Text.Json.Serialization;
using Corral.Processes.Internal;

namespace Corral.Processes;

/// <summary>
/// What a tree used, read from its cgroup leaf once the tree is gone and before the leaf is removed: the resource
/// receipt of <see cref="ProcessOutcome.Resources"/> (<c>resources</c> in JSON). A value is <c>null</c> where it is
/// unknown: in session mode, or where the controller that counts it is not enabled for the leaf.
/// </summary>
public sealed record ResourceUsage
{
    /// <summary>The receipt of a tree nothing was measured for.</summary>
    public static ResourceUsage Unknown { get; } = new();

    /// <summary>The most memory the tree used at once (<c>memory.peak</c>).</summary>
    public long? MemoryPeakBytes { get; init; }

    /// <summary>CPU time in user mode, all of the tree's processes together (<c>cpu.stat</c> <c>user_usec</c>).</summary>
    [JsonPropertyName("cpuUserMs")]
    [JsonConverter(typeof(MillisecondsConverter))]
    public TimeSpan? CpuUser { get; init; }

    /// <summary>CPU time in the kernel on the tree's behalf (<c>cpu.stat</c> <c>system_usec</c>).</summary>
    [JsonPropertyName("cpuSystemMs")]
    [JsonConverter(typeof(MillisecondsConverter))]
    public TimeSpan? CpuSystem { get; init; }

    /// <summary>The most processes the tree had at once (<c>pids.peak</c>, where the kernel has it).</summary>
    public long? PidsPeak { get; init; }

    /// <summary>Processes of the tree the OOM killer killed (<c>memory.events</c> <c>oom_kill</c>).</summary>
    public long? OomKills { get; init; }

    /// <summary>
    /// The limit the tree ran into: <see cref="ResourceLimitKind.Memory"/> when the kernel ran out of memory for it
    /// (<c>memory.events</c> <c>oom</c> or <c>oom_kill</c>), otherwise <see cref="ResourceLimitKind.Pids"/> when a
    /// fork was refused (<c>pids.events</c> <c>max</c>); <c>null</c> when none was hit (or nothing could tell).
    /// A child the OOM killer killed ends as any SIGKILL (<see cref="ProcessOutcome.Signal"/> 9, shell status 137): this says why.
    /// </summary>
    public ResourceLimitKind? LimitHit { get; init; }

    /// <summary>Which of the requested limits were in force on the tree.</summary>
    public EnforcedLimits Enforced { get; init; } = EnforcedLimits.None;
}

/// <summary>Which limits of <see cref="ResourceLimits"/> were in force; <c>false</c> for one not asked for or one the host could not enforce.</summary>
/// <param name="Memory"><c>memory.max</c> (and <c>memory.swap.max</c> where swap is accounted) was set.</param>
/// <param name="Pids"><c>pids.max</c> was set.</param>
/// <param name="Cpu"><c>cpu.max</c> was set.</param>
public sealed record EnforcedLimits(bool Memory, bool Pids, bool Cpu)
{
    /// <summary>No limit in force.</summary>
    public static EnforcedLimits None { get; } = new(false, false, false);
}

/// <summary>A limit a tree can run into (a CPU limit throttles and is never hit).</summary>
public enum ResourceLimitKind
{
    /// <summary>The memory limit: the OOM killer acted inside the tree.</summary>
    Memory,

    /// <summary>The process limit: a fork or clone was refused.</summary>
    Pids,
}
