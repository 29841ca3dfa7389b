using System.Diagnostics;

namespace Corral.Server.Tests.Support;

/// <summary>Facts about processes read from /proc, and condition waits with deadlines.</summary>
internal static class Proc
{
    /// <summary>Alive means present in /proc and not a zombie.</summary>
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

    /// <summary>Processes whose environment carries <c>CORRAL_TREE_ID=treeId</c>.</summary>
    public static List<int> WithTreeId(string treeId)
    {
        var found = new List<int>();
        string needle = "CORRAL_TREE_ID=" + treeId;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid) || !IsAlive(pid))
                continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "environ")).Split('\0').Contains(needle))
                    found.Add(pid);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }

        return found;
    }

    public static async Task WaitForAsync(Func<bool> condition, TimeSpan deadline, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > deadline)
            {
                if (condition())
                    return;
                throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for {what}.");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Kills a process we started (best effort, for cleanup after a failed test).</summary>
    public static void Kill(int pid)
    {
        try
        {
            Process.GetProcessById(pid).Kill();
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }
    }
}
