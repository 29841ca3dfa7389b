using System.Diagnostics;

namespace Corral.Processes.Tests.Support;

/// <summary>Facts about processes read straight from /proc, and condition waits with deadlines.</summary>
internal static class Proc
{
    /// <summary>Alive means present in /proc and not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            char state = stat[(stat.LastIndexOf(')') + 2)];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>The parent PID, or 0 if the process is gone (it can vanish between two reads).</summary>
    public static int ParentPid(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1]);
        }
        catch (IOException)
        {
            return 0;
        }
    }

    public static char State(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)];
        }
        catch (IOException)
        {
            return '-';
        }
    }

    public static async Task<bool> EventuallyAsync(Func<bool> condition, TimeSpan deadline)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > deadline)
                return condition();
            await Task.Delay(10);
        }

        return true;
    }

    public static async Task WaitForAsync(Func<bool> condition, TimeSpan deadline, string what)
    {
        if (!await EventuallyAsync(condition, deadline))
            throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for {what}.");
    }
}

/// <summary>A scratch directory where test scripts write the PIDs of the processes they start.</summary>
internal sealed class PidDir : IDisposable
{
    public PidDir() => Path = Directory.CreateTempSubdirectory("corral-test-").FullName;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Every PID recorded in any file of the directory.</summary>
    public IReadOnlyList<int> AllPids() =>
        Directory.EnumerateFiles(Path)
            .SelectMany(System.IO.File.ReadAllLines)
            .Select(l => int.TryParse(l.Trim(), out int p) ? p : 0)
            .Where(p => p > 0)
            .ToArray();

    /// <summary>SIGKILL anything a failed test left behind, so one failure does not poison the machine.</summary>
    public void Dispose()
    {
        foreach (int pid in AllPids())
        {
            if (Proc.IsAlive(pid))
            {
                try { Process.GetProcessById(pid).Kill(); } catch (Exception) { }
            }
        }

        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class Modes
{
    public static bool CgroupAvailable => Internal.Containment.CgroupHost.Instance is not null;

    /// <summary>Both containment modes, each run where the host allows it.</summary>
    public static TheoryData<ContainmentMode> Both => new() { ContainmentMode.Cgroup, ContainmentMode.Session };

    public static void SkipIfUnavailable(ContainmentMode mode) =>
        Assert.SkipWhen(mode == ContainmentMode.Cgroup && !CgroupAvailable,
            "No writable cgroup v2 hierarchy on this host: " + Internal.Containment.CgroupHost.UnavailableReason);

    public static ProcessSpec Bash(string script, ContainmentMode mode) =>
        new ProcessSpec("/bin/bash", "-c", script) { Containment = mode };
}
