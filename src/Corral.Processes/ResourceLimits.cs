namespace Corral.Processes;

/// <summary>
/// Resource limits on a whole tree, written to its cgroup leaf before the child is created in it (cgroup v2
/// <c>memory.max</c>, <c>memory.swap.max</c>, <c>pids.max</c>, <c>cpu.max</c>), so the program never runs without
/// them. Corral enables the controllers it needs in its own delegated subtree (or under <c>CORRAL_CGROUP_PARENT</c>)
/// where the host delegates them; a limit the host cannot enforce (no cgroup, controller not delegated) is reported
/// as not enforced in <see cref="ResourceUsage.Enforced"/>, or refused up front with <see cref="Required"/>.
/// </summary>
public sealed record ResourceLimits
{
    /// <summary>The most memory the tree may use, in bytes (<c>memory.max</c>); past it the kernel reclaims, then OOM-kills inside the tree.</summary>
    public long? MemoryMaxBytes { get; init; }

    /// <summary>
    /// With <see cref="MemoryMaxBytes"/>: the most swap the tree may use (<c>memory.swap.max</c>). Default: none, so
    /// the memory limit cannot be stretched by swapping. Ignored where the kernel does not account swap.
    /// </summary>
    public long? SwapMaxBytes { get; init; }

    /// <summary>The most processes (and threads) the tree may have at once (<c>pids.max</c>); past it fork and clone fail with EAGAIN.</summary>
    public int? PidsMax { get; init; }

    /// <summary>
    /// CPU time as a number of cores, e.g. 0.2 for a fifth of one core or 1.5 (<c>cpu.max</c> with a 100 ms period:
    /// 0.2 is <c>20000 100000</c>). From 0.01. The tree is throttled, never killed, for using more.
    /// </summary>
    public double? CpuMax { get; init; }

    /// <summary>
    /// When <c>true</c>, <see cref="ProcessTree.Start"/> throws <see cref="ProcessSpawnException"/>
    /// (<see cref="SpawnFailure.LimitUnavailable"/>, with the reason) instead of running the tree with a limit the
    /// host cannot enforce. Default: run, and report the limit as not enforced.
    /// </summary>
    public bool Required { get; init; }

    /// <summary>Whether any limit is set.</summary>
    public bool Any => MemoryMaxBytes is not null || PidsMax is not null || CpuMax is not null;
}
