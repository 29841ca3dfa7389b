using Corral.Processes;

namespace Corral.Testing.Support.Guest;

/// <summary>The host tools a guest needs, each run as a contained tree with a deadline.</summary>
internal static class Tool
{
    /// <summary>The program's path on PATH (or the fixed system directories), or <c>null</c>.</summary>
    public static string? Which(string name)
    {
        var directories = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]);
        return directories.Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);
    }

    /// <summary>Runs <paramref name="file"/>; its result whatever the exit code.</summary>
    public static Task<ProcessResult> RunAsync(string file, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken ct,
        string? workingDirectory = null, OutputTarget? stdout = null)
    {
        var spec = new ProcessSpec(file, arguments)
        {
            WorkingDirectory = workingDirectory,
            Timeout = timeout,
            StandardOutput = stdout ?? OutputTarget.Capture,
            Environment = new Dictionary<string, string?> { ["DEBIAN_FRONTEND"] = "noninteractive", ["LC_ALL"] = "C" },
            Teardown = new TeardownOptions { Grace = TimeSpan.FromSeconds(2) },
        };
        return ProcessTree.RunAsync(spec, ct);
    }

    /// <summary>Runs <paramref name="file"/> and returns its stdout; a failure is a <see cref="GuestUnavailableException"/> naming the command.</summary>
    public static async Task<string> RequireAsync(string file, IReadOnlyList<string> arguments, TimeSpan timeout, CancellationToken ct, string? workingDirectory = null)
    {
        var result = await RunAsync(file, arguments, timeout, ct, workingDirectory);
        if (result.Outcome.ExitCode != 0)
        {
            throw new GuestUnavailableException(
                $"'{file} {string.Join(' ', arguments)}' failed ({result.Outcome.Reason}, status {result.Outcome.ShellExitCode}): {Tail(result.StandardError)}");
        }

        return result.StandardOutput;
    }

    public static string Tail(string text) => text.Length <= 600 ? text.Trim() : "…" + text[^600..].Trim();
}
