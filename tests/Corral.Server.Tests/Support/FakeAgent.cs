namespace Corral.Server.Tests.Support;

/// <summary>The fake Claude Code CLI shipped with the tests.</summary>
internal static class FakeAgent
{
    public static string ClaudePath { get; } = Prepare(Path.Combine(AppContext.BaseDirectory, "FakeAgents", "fake-claude.js"));

    private static string Prepare(string path)
    {
        // The build copy may not keep the executable bit.
        File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        return path;
    }
}
