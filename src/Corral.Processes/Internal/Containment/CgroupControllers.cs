using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>The resource controllers enabled for Corral's leaves (in the parent's <c>cgroup.subtree_control</c>), and why any is missing.</summary>
internal sealed record LeafControllers(bool Memory, bool Pids, bool Cpu, string? Reason = null)
{
    public static LeafControllers None(string reason) => new(false, false, false, reason);

    public bool All => Memory && Pids && Cpu;

    public static LeafControllers Parse(string? subtreeControl, string? reason = null)
    {
        var names = Words(subtreeControl);
        return new LeafControllers(names.Contains("memory"), names.Contains("pids"), names.Contains("cpu"), reason);
    }

    public static HashSet<string> Words(string? text) =>
        (text ?? "").Split((char[])[' ', '\n'], StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
}

/// <summary>
/// Enables the memory, pids and cpu controllers for Corral's leaves where the host delegates them, the way a
/// systemd <c>Delegate=yes</c> service does: only inside Corral's own cgroup (the parent's parent, when the parent is
/// the default <c>&lt;own cgroup&gt;/corral</c>) or in the configured <c>CORRAL_CGROUP_PARENT</c> itself, never above,
/// never in a cgroup v1 hierarchy.
/// </summary>
/// <remarks>
/// cgroup v2's "no internal processes" rule: a cgroup other than the root can enable controllers for its children
/// only while it holds no process. When Corral's own cgroup holds Corral alone, Corral moves itself into a child
/// cgroup named <c>supervisor</c> (as systemd's delegation guide suggests) and enables them; when it holds other
/// processes too, Corral moves none of them, and the limits are reported as not enforced with that reason.
/// </remarks>
internal static class CgroupControllers
{
    public const string SupervisorCgroup = "supervisor";

    private static readonly string[] Wanted = ["memory", "pids", "cpu"];

    /// <summary>What is enabled for the leaves under <paramref name="parent"/> right now, without changing anything.</summary>
    public static LeafControllers Current(string parent) => LeafControllers.Parse(Read(Path.Combine(parent, "cgroup.subtree_control")));

    /// <param name="mountPoint">The cgroup2 mount.</param>
    /// <param name="parent">The cgroup whose children are the leaves.</param>
    /// <param name="parentConfigured">The parent came from <c>CORRAL_CGROUP_PARENT</c>: its own parent is the operator's.</param>
    public static LeafControllers Enable(string mountPoint, string parent, bool parentConfigured)
    {
        var reasons = new List<string>();
        var enabled = LeafControllers.Words(Read(Path.Combine(parent, "cgroup.subtree_control")));
        var missing = Wanted.Where(c => !enabled.Contains(c)).ToList();
        if (missing.Count == 0)
            return Current(parent);

        var available = LeafControllers.Words(Read(Path.Combine(parent, "cgroup.controllers")));
        var notOffered = missing.Where(c => !available.Contains(c)).ToList();
        if (notOffered.Count > 0)
        {
            string own = Path.GetDirectoryName(parent)!;
            if (parentConfigured || !own.StartsWith(mountPoint, StringComparison.Ordinal))
                reasons.Add($"{Names(notOffered)} not delegated to {parent} (enable {Names(notOffered, "+")} in {own}/cgroup.subtree_control)");
            else
                EnableIn(own, notOffered, own == mountPoint, reasons);
            available = LeafControllers.Words(Read(Path.Combine(parent, "cgroup.controllers")));
        }

        foreach (string controller in missing.Where(available.Contains))
        {
            int errno = Fd.WriteFile(Path.Combine(parent, "cgroup.subtree_control"), "+" + controller);
            if (errno != 0)
                reasons.Add($"cannot enable {controller} in {parent}: {Libc.Describe(errno)}");
        }

        return LeafControllers.Parse(Read(Path.Combine(parent, "cgroup.subtree_control")), reasons.Count > 0 ? string.Join("; ", reasons) : null);
    }

    /// <summary>Enables <paramref name="controllers"/> in our own cgroup's subtree_control, moving ourselves aside first if that is all that stops it.</summary>
    private static void EnableIn(string own, List<string> controllers, bool isRoot, List<string> reasons)
    {
        var offered = LeafControllers.Words(Read(Path.Combine(own, "cgroup.controllers")));
        var absent = controllers.Where(c => !offered.Contains(c)).ToList();
        if (absent.Count > 0)
        {
            reasons.Add(isRoot
                ? $"the cgroup v2 hierarchy at {own} has no {Names(absent)} controller (a hybrid host binds them to cgroup v1)"
                : $"the host does not delegate {Names(absent)} to Corral's cgroup {own} (see its cgroup.controllers; with systemd: Delegate=yes)");
        }

        bool movedAside = false;
        foreach (string controller in controllers.Where(offered.Contains))
        {
            string control = Path.Combine(own, "cgroup.subtree_control");
            int errno = Fd.WriteFile(control, "+" + controller);
            if (errno == Libc.EBUSY && !isRoot && !movedAside)
            {
                // No internal processes: possible only if the processes in our cgroup are ours alone.
                string? why = MoveSelfAside(own);
                if (why is not null)
                {
                    reasons.Add(why);
                    return;
                }

                movedAside = true;
                errno = Fd.WriteFile(control, "+" + controller);
            }

            if (errno != 0)
                reasons.Add($"cannot enable {controller} in {own}: {Libc.Describe(errno)}");
        }
    }

    /// <summary>Moves this process into <c>own/supervisor</c>; a reason instead when <paramref name="own"/> holds any other process.</summary>
    private static string? MoveSelfAside(string own)
    {
        string self = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var others = (Read(Path.Combine(own, "cgroup.procs")) ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(p => p != self).ToList();
        if (others.Count > 0)
        {
            return $"Corral's cgroup {own} holds other processes ({string.Join(", ", others.Take(5))}{(others.Count > 5 ? ", …" : "")}), " +
                   "and cgroup v2 enables controllers only in a cgroup without processes: run Corral in a cgroup of its own " +
                   "(systemd Delegate=yes) or set " + CgroupHost.ParentVariable;
        }

        string supervisor = Path.Combine(own, SupervisorCgroup);
        if (Libc.mkdir(supervisor, Convert.ToInt32("755", 8)) != 0 && Libc.LastError != Libc.EEXIST)
            return $"cannot create {supervisor} to leave {own} free of processes: {Libc.Describe(Libc.LastError)}";
        int errno = Fd.WriteFile(Path.Combine(supervisor, "cgroup.procs"), self);
        return errno == 0 ? null : $"cannot move Corral into {supervisor}: {Libc.Describe(errno)}";
    }

    private static string Names(List<string> controllers, string prefix = "") => string.Join(prefix.Length > 0 ? " " : ", ", controllers.Select(c => prefix + c));

    private static string? Read(string path)
    {
        byte[] buffer = new byte[512];
        int n = Fd.ReadFile(path, ref buffer);
        return n < 0 ? null : System.Text.Encoding.ASCII.GetString(buffer, 0, n);
    }
}
