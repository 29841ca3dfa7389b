using System.Diagnostics;

namespace Corral.Testing.FakeAnthropic.Tests.Support;

/// <summary>Process facts from /proc, and condition waits with deadlines.</summary>
internal static class Pids
{
    /// <summary>Present in /proc and not a zombie (PID 1 of this sandbox does not always reap orphans).</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2] is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static string CommandLine(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>Reads a pid a process wrote to a file (waits until the file holds a number).</summary>
    public static async Task<int> ReadPidFileAsync(string path, TimeSpan timeout)
    {
        int pid = 0;
        await WaitForAsync(() => File.Exists(path) && int.TryParse(File.ReadAllText(path).Trim(), out pid) && pid > 0,
            timeout, $"a pid in {path}");
        return pid;
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

    /// <summary>SIGKILL a leftover the test knows about (only that pid).</summary>
    public static void KillIfAlive(int pid)
    {
        if (pid <= 0 || !IsAlive(pid))
            return;
        try
        {
            Process.GetProcessById(pid).Kill();
        }
        catch (Exception)
        {
            // Already gone.
        }
    }
}
