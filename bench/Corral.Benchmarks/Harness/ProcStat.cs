namespace Corral.Benchmarks.Harness;

/// <summary>A <c>/proc/PID/stat</c> (or <c>/proc/PID/task/TID/stat</c>) line, split around its comm, which may hold spaces and parentheses.</summary>
internal static class ProcStat
{
    /// <summary>The comm, and the fields after it: index 0 is field 3 (the state), index 1 the parent's PID, 11 and 12 utime and stime.</summary>
    public static (string Comm, string[] Fields) Read(string path)
    {
        string stat = File.ReadAllText(path);
        int open = stat.IndexOf('('), close = stat.LastIndexOf(')');
        return (stat[(open + 1)..close], stat[(close + 2)..].Split(' '));
    }

    /// <summary><see cref="Read(string)"/> of <c>/proc/PID/stat</c>.</summary>
    public static (string Comm, string[] Fields) Read(int pid) => Read($"/proc/{pid}/stat");
}
