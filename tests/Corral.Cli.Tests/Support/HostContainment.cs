using Corral.Processes;

namespace Corral.Cli.Tests.Support;

/// <summary>What the host allows, asked through the library's public API rather than assumed.</summary>
internal static class HostContainment
{
    private static readonly Lazy<Task<ContainmentKind>> AutoKind = new(async () =>
        (await ProcessTree.RunAsync(new ProcessSpec("/bin/true"))).Outcome.Containment);

    /// <summary>The containment <c>ContainmentMode.Auto</c> gives here: cgroup with a writable cgroup v2 hierarchy, else session.</summary>
    public static Task<ContainmentKind> AutoAsync() => AutoKind.Value;

    public static string JsonName(ContainmentKind kind) => kind == ContainmentKind.Cgroup ? "cgroup" : "session";
}
