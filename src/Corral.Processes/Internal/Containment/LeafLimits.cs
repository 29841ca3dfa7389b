using System.Globalization;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>
/// A tree's resource limits on its leaf (written before the child exists, so the program never runs without
/// them), and its receipt (read once the tree is gone, before the leaf is removed).
/// </summary>
internal static class LeafLimits
{
    /// <summary>cpu.max's period: 100 ms, the kernel's default.</summary>
    public const int CpuPeriodMicros = 100_000;

    /// <summary>The kernel's smallest quota is 1 ms per period.</summary>
    public const double MinCpuCores = 0.01;

    /// <summary>Far more cores than any machine; keeps the quota well inside the kernel's range.</summary>
    public const double MaxCpuCores = 1 << 20;

    /// <summary>cpu.max for <paramref name="cores"/>: 0.2 is "20000 100000". A pure function.</summary>
    public static string CpuMax(double cores) =>
        $"{Math.Max(1000, (long)Math.Round(cores * CpuPeriodMicros)).ToString(CultureInfo.InvariantCulture)} {CpuPeriodMicros.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>Writes the limits; what is in force, and why anything asked for is not.</summary>
    public static (EnforcedLimits Enforced, string? Reason) Apply(CgroupLeaf leaf, ResourceLimits limits)
    {
        var reasons = new List<string>();
        var controllers = leaf.Controllers;
        bool memory = false, pids = false, cpu = false;
        if (limits.MemoryMaxBytes is { } memoryMax)
        {
            memory = Write(leaf, controllers.Memory, "memory", "memory.max", Number(memoryMax), reasons);
            // Swap off unless asked for. Without swap accounting the file does not exist and memory.max bounds RAM alone.
            if (memory && File.Exists(System.IO.Path.Combine(leaf.Path, "memory.swap.max")))
                memory = Write(leaf, true, "memory", "memory.swap.max", Number(limits.SwapMaxBytes ?? 0), reasons);
        }

        if (limits.PidsMax is { } pidsMax)
            pids = Write(leaf, controllers.Pids, "pids", "pids.max", Number(pidsMax), reasons);
        if (limits.CpuMax is { } cores)
            cpu = Write(leaf, controllers.Cpu, "cpu", "cpu.max", CpuMax(cores), reasons);
        return (new EnforcedLimits(memory, pids, cpu), reasons.Count > 0 ? string.Join("; ", reasons.Distinct()) : null);
    }

    /// <summary>Why no limit can be enforced on a tree without a leaf.</summary>
    public static string WithoutLeaf(string why) => "the tree has no cgroup (" + why + "), and limits live on its cgroup";

    private static bool Write(CgroupLeaf leaf, bool enabled, string controller, string file, string value, List<string> reasons)
    {
        if (!enabled)
        {
            reasons.Add($"the {controller} controller is not enabled for Corral's cgroups" + (leaf.Controllers.Reason is { } why ? ": " + why : ""));
            return false;
        }

        int errno = Fd.WriteFile(System.IO.Path.Combine(leaf.Path, file), value);
        if (errno == 0)
            return true;
        reasons.Add($"cannot write {value} to {file}: {Libc.Describe(errno)}");
        return false;
    }

    /// <summary>The receipt, from the leaf's accounting files; a value the leaf does not have stays null.</summary>
    public static ResourceUsage Receipt(CgroupLeaf leaf, EnforcedLimits enforced)
    {
        byte[] buffer = new byte[1024];
        var cpu = ReadKeyed(leaf, "cpu.stat", ref buffer);
        var controllers = leaf.Controllers;
        var memoryEvents = controllers.Memory ? ReadKeyed(leaf, "memory.events", ref buffer) : null;
        var pidsEvents = controllers.Pids ? ReadKeyed(leaf, "pids.events", ref buffer) : null;
        long? oom = memoryEvents?.GetValueOrDefault("oom");
        long? oomKills = memoryEvents?.GetValueOrDefault("oom_kill");
        long? forksRefused = pidsEvents?.GetValueOrDefault("max");
        return new ResourceUsage
        {
            MemoryPeakBytes = controllers.Memory ? ReadValue(leaf, "memory.peak", ref buffer) : null,
            CpuUser = Micros(cpu?.GetValueOrDefault("user_usec", -1)),
            CpuSystem = Micros(cpu?.GetValueOrDefault("system_usec", -1)),
            PidsPeak = controllers.Pids ? ReadValue(leaf, "pids.peak", ref buffer) : null,
            OomKills = oomKills,
            LimitHit = LimitHit(oom, oomKills, forksRefused),
            Enforced = enforced,
        };
    }

    /// <summary>Which limit the events say the tree ran into: memory first (it kills), then pids. A pure function.</summary>
    public static ResourceLimitKind? LimitHit(long? oom, long? oomKills, long? forksRefused) =>
        oom > 0 || oomKills > 0 ? ResourceLimitKind.Memory
        : forksRefused > 0 ? ResourceLimitKind.Pids
        : null;

    private static TimeSpan? Micros(long? micros) => micros is { } us && us >= 0 ? TimeSpan.FromMicroseconds(us) : null;

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static long? ReadValue(CgroupLeaf leaf, string file, ref byte[] buffer)
    {
        int n = Fd.ReadFile(System.IO.Path.Combine(leaf.Path, file), ref buffer);
        return n > 0 && long.TryParse(buffer.AsSpan(0, n).TrimEnd((byte)'\n'), NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : null;
    }

    /// <summary>A flat keyed file ("key value" lines) such as cpu.stat or memory.events; null when it cannot be read.</summary>
    private static Dictionary<string, long>? ReadKeyed(CgroupLeaf leaf, string file, ref byte[] buffer)
    {
        int n = Fd.ReadFile(System.IO.Path.Combine(leaf.Path, file), ref buffer);
        if (n <= 0)
            return null;
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string line in System.Text.Encoding.ASCII.GetString(buffer, 0, n).Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            int space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0 && long.TryParse(line.AsSpan(space + 1), NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                values[line[..space]] = v;
        }

        return values;
    }
}
