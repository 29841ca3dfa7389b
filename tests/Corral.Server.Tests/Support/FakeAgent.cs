namespace Corral.Server.Tests.Support;

/// <summary>The fake Claude Code CLI shipped with the tests.</summary>
internal static class FakeAgent
{
    public static string ClaudePath { get; } = Prepare(Path.Combine(AppContext.BaseDirectory, "FakeAgents", "fake-claude.js"));

    public static string CodexPath { get; } = Prepare(Path.Combine(AppContext.BaseDirectory, "FakeAgents", "fake-codex.js"));

    public static string GeminiPath { get; } = Prepare(Path.Combine(AppContext.BaseDirectory, "FakeAgents", "fake-gemini.js"));

    private static string Prepare(string path)
    {
        // The build copy may not keep the executable bit.
        File.SetUnixFileMode(path, File.GetUnixFileMode(path) | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        return path;
    }
}
