using System.Runtime.InteropServices;

namespace Corral.Testing.FakeAnthropic.Tests.Support;

/// <summary>Signals and lists a process group (the CLI leads its own, via setsid).</summary>
internal static partial class ProcessGroup
{
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    /// <summary>Sends <paramref name="signal"/> to every process in group <paramref name="pgid"/>.</summary>
    public static bool Signal(int pgid, int signal) => pgid > 1 && kill(-pgid, signal) == 0;

    /// <summary>Live (non-zombie) processes whose process group is <paramref name="pgid"/>.</summary>
    public static IReadOnlyList<int> Members(int pgid)
    {
        var members = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
                continue;
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                // pid (comm) state ppid pgrp …: comm may contain spaces and parentheses, so parse after the last ')'.
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                if (fields[0] is not ("Z" or "X") && int.Parse(fields[2]) == pgid)
                    members.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // Gone meanwhile.
            }
        }

        return members;
    }
}
