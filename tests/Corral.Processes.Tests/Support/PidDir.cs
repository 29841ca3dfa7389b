namespace Corral.Processes.Tests.Support;

/// <summary>A scratch directory where test scripts write the PIDs of the processes they start.</summary>
internal sealed class PidDir : IDisposable
{
    /// <param name="forAnyUser">Make it writable by every user, for trees that run as another uid.</param>
    public PidDir(bool forAnyUser = false)
    {
        Path = Directory.CreateTempSubdirectory("corral-test-").FullName;
        if (forAnyUser)
            System.IO.File.SetUnixFileMode(Path, (UnixFileMode)Convert.ToInt32("777", 8));
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>A new directory <paramref name="name"/> in this one that every user may write in: a private directory for a tree of another uid.</summary>
    public string OpenDirectory(string name)
    {
        string directory = Directory.CreateDirectory(File(name)).FullName;
        System.IO.File.SetUnixFileMode(directory, (UnixFileMode)Convert.ToInt32("777", 8));
        return directory;
    }

    /// <summary>Every PID recorded in any file of the directory.</summary>
    public IReadOnlyList<int> AllPids() =>
        Directory.EnumerateFiles(Path)
            .SelectMany(System.IO.File.ReadAllLines)
            .Select(l => int.TryParse(l.Trim(), out int p) ? p : 0)
            .Where(p => p > 0)
            .ToArray();

    /// <summary>
    /// SIGKILL anything a failed test left behind, so one failure does not poison the machine. Only processes whose
    /// environment holds <c>D=</c> this directory (the scripts get it): a recorded PID may belong to another test's
    /// process by now.
    /// </summary>
    public void Dispose()
    {
        foreach (int pid in AllPids())
            Proc.KillIfAlive(pid, "D=" + Path);

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

    /// <summary>Giving a tree another uid needs root here (or CAP_SETUID/CAP_SETGID) and the native spawn.</summary>
    public static void SkipUnlessUsersCanBeSwitched(ContainmentMode mode = ContainmentMode.Session)
    {
        SkipIfUnavailable(mode);
        Assert.SkipWhen(Interop.Libc.geteuid() != 0, "not running as root: the tree cannot be given another uid");
        Assert.SkipUnless(Interop.CorralSpawn.Available, $"{Interop.CorralSpawn.FileName} is not built: only the native spawn changes identity");
    }

    /// <summary>A shared directory to bind over that does not hold the test's working directory (a fresh clone may be under /tmp), which the tree must still see.</summary>
    public static string PrivateTarget => Environment.CurrentDirectory.StartsWith("/tmp/", StringComparison.Ordinal) ? "/var/tmp" : "/tmp";

    public static ProcessSpec Bash(string script, ContainmentMode mode) =>
        new ProcessSpec("/bin/bash", "-c", script) { Containment = mode };
}
