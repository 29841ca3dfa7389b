using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Corral.Cli.Tests.Support;

/// <summary>Facts about processes, read from /proc; condition waits with deadlines.</summary>
internal static partial class Proc
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    /// <summary>Present in /proc and not a zombie. A zombie has exited: it only waits for its parent to reap it.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            char state = stat[stat.LastIndexOf(')') + 2];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if it is already gone.</summary>
    public static bool Signal(int pid, int signal) => kill(pid, signal) == 0;

    /// <summary>SIGKILLs <paramref name="pid"/> if it is alive: cleanup for a test that failed half-way.</summary>
    public static void KillIfAlive(int pid)
    {
        if (pid > 0 && IsAlive(pid))
            Signal(pid, SIGKILL);
    }

    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan deadline)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > deadline)
                return condition();
            await Task.Delay(20);
        }

        return true;
    }

    public static async Task WaitForAsync(Func<bool> condition, TimeSpan deadline, string what)
    {
        if (!await EventuallyAsync(condition, deadline))
            throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for {what}.");
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);
}
