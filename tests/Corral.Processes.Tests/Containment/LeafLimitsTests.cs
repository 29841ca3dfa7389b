using Corral.Processes.Internal.Containment;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>
/// Limits are written to the leaf before the child exists and reported as enforced only where the host enforces
/// them; a required limit the host cannot enforce is refused before anything runs. Enforcement itself is tested in a
/// guest with a pure cgroup v2 hierarchy (Corral.Cli.Tests, RunLimitsGuestTests): this host binds the controllers to v1.
/// </summary>
public sealed class LeafLimitsTests
{
    private static readonly ResourceLimits All = new() { MemoryMaxBytes = 64 << 20, PidsMax = 20, CpuMax = 0.2 };

    [Theory]
    [InlineData(0.2, "20000 100000")]
    [InlineData(1.5, "150000 100000")]
    [InlineData(0.01, "1000 100000")]
    [InlineData(2, "200000 100000")]
    public void Cores_become_a_quota_per_100_ms_period(double cores, string expected) =>
        Assert.Equal(expected, LeafLimits.CpuMax(cores));

    [Theory]
    [InlineData(0L, 0L, 0L, null)]
    [InlineData(1L, 1L, 0L, ResourceLimitKind.Memory)]
    [InlineData(0L, 2L, 5L, ResourceLimitKind.Memory)]
    [InlineData(3L, 0L, 0L, ResourceLimitKind.Memory)]
    [InlineData(0L, 0L, 7L, ResourceLimitKind.Pids)]
    [InlineData(null, null, 7L, ResourceLimitKind.Pids)]
    [InlineData(null, null, null, null)]
    public void The_limit_hit_is_memory_when_the_OOM_killer_acted_otherwise_pids_when_a_fork_was_refused(long? oom, long? oomKills, long? forksRefused, ResourceLimitKind? expected) =>
        Assert.Equal(expected, LeafLimits.LimitHit(oom, oomKills, forksRefused));

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task Limits_are_reported_as_enforced_exactly_where_the_host_enforces_them(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        var result = await ProcessTree.RunAsync(Modes.Bash("echo ran", mode) with { ResourceLimits = All }, TestContext.Current.CancellationToken);

        Assert.Equal("ran\n", result.StandardOutput);
        var expected = mode == ContainmentMode.Session ? EnforcedLimits.None : Enforceable();
        Assert.Equal(expected, result.Outcome.Resources.Enforced);
        Assert.Null(result.Outcome.Resources.LimitHit);
    }

    [Theory(Timeout = 120_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public void A_required_limit_the_host_cannot_enforce_is_refused_before_anything_runs(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        Assert.SkipWhen(mode == ContainmentMode.Cgroup && Enforceable() is { Memory: true, Pids: true, Cpu: true },
            "this host enforces every limit");
        using var dir = new PidDir();
        var spec = Modes.Bash($"touch {dir.File("ran")}", mode) with { ResourceLimits = All with { Required = true } };

        var e = Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(spec, TestContext.Current.CancellationToken));

        Assert.Equal(SpawnFailure.LimitUnavailable, e.Failure);
        Assert.Contains("cannot be enforced", e.Message);
        Assert.Contains(mode == ContainmentMode.Session ? "no cgroup" : "controller", e.Message);
        Assert.False(File.Exists(dir.File("ran")));
    }

    [Fact(Timeout = 120_000)]
    public async Task The_receipt_has_the_trees_cpu_time_from_its_leaf_and_null_for_what_the_leaf_does_not_count()
    {
        Modes.SkipIfUnavailable(ContainmentMode.Cgroup);
        // A busy loop of about 100 ms, half of it in a grandchild: the leaf counts every process of the tree.
        var result = await ProcessTree.RunAsync(Modes.Bash(
            "spin() { local end=$((SECONDS + 2)); i=0; while [ $i -lt 40000 ] && [ $SECONDS -lt $end ]; do i=$((i+1)); done; }; spin & spin; wait",
            ContainmentMode.Cgroup), TestContext.Current.CancellationToken);

        var resources = result.Outcome.Resources;
        var controllers = CgroupHost.Instance!.Controllers;
        Assert.NotNull(resources.CpuUser);
        Assert.NotNull(resources.CpuSystem);
        Assert.InRange((resources.CpuUser + resources.CpuSystem)!.Value, TimeSpan.FromMilliseconds(20), TimeSpan.FromSeconds(10));
        Assert.Equal(controllers.Memory, resources.MemoryPeakBytes is not null);
        Assert.Equal(controllers.Memory, resources.OomKills is not null);
        Assert.Equal(EnforcedLimits.None, resources.Enforced);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_session_tree_has_a_receipt_of_unknowns()
    {
        var result = await ProcessTree.RunAsync(Modes.Bash("true", ContainmentMode.Session), TestContext.Current.CancellationToken);

        Assert.Equal(ResourceUsage.Unknown, result.Outcome.Resources);
    }

    [Theory]
    [InlineData(0L, null, null, null)]
    [InlineData(null, 0, null, null)]
    [InlineData(null, null, 0.001, null)]
    [InlineData(null, null, -1.0, null)]
    [InlineData(1L << 20, null, null, -1L)]
    public void Limits_out_of_range_are_refused_as_invalid(long? memory, int? pids, double? cpu, long? swap)
    {
        var spec = new ProcessSpec("/bin/true") { ResourceLimits = new ResourceLimits { MemoryMaxBytes = memory, PidsMax = pids, CpuMax = cpu, SwapMaxBytes = swap } };

        var e = Assert.Throws<ProcessSpawnException>(() => ProcessTree.Start(spec, TestContext.Current.CancellationToken));

        Assert.Equal(SpawnFailure.InvalidArgument, e.Failure);
    }

    /// <summary>What this host can enforce on a leaf, enabling the controllers as a limited tree would.</summary>
    private static EnforcedLimits Enforceable() =>
        CgroupHost.Instance?.EnsureControllers() is { } c ? new EnforcedLimits(c.Memory, c.Pids, c.Cpu) : EnforcedLimits.None;
}
