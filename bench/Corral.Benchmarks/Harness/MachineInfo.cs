using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace Corral.Benchmarks.Harness;

/// <summary>The machine, read from the machine itself.</summary>
internal sealed record MachineInfo(
    string Cpu, int Cores, string Kernel, string Glibc, string DotNet, string Memory, string LoadAverage, bool Busy,
    string Cgroup, string Commit, int Processes)
{
    public string Summary =>
        $"{Cpu}, {Cores} cores, {Memory} RAM; Linux {Kernel}; glibc {Glibc}; {DotNet}; {Cgroup}; {Processes} processes running at start";

    public static MachineInfo Read(string repoRoot)
    {
        string cpu = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "?";
        string kernel = File.ReadAllText("/proc/sys/kernel/osrelease").Trim();
        long memKb = long.Parse(File.ReadLines("/proc/meminfo").First().Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        string load = LoadAverageNow();
        bool busy = double.Parse(load.Split(' ')[0], CultureInfo.InvariantCulture) >= 0.5;
        string cgroup = Corral.Processes.Internal.Containment.CgroupHost.Instance is { } host
            ? $"cgroup v2 writable ({host.ParentPath})"
            : "no writable cgroup v2 (" + Corral.Processes.Internal.Containment.CgroupHost.UnavailableReason + ")";
        return new MachineInfo(cpu, Environment.ProcessorCount, kernel, Native.LibcVersion(), RuntimeInformation.FrameworkDescription,
            $"{memKb / 1024 / 1024.0:0.0} GiB", load, busy, cgroup, Git(repoRoot), Leftovers.CountProcesses());
    }

    /// <summary>A process's resident memory (VmRSS) in bytes; 0 when it is gone.</summary>
    public static long ResidentBytes(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException)
        {
        }

        return 0;
    }

    public static string LoadAverageNow() => string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));

    private static string Git(string repoRoot)
    {
        try
        {
            var psi = new ProcessStartInfo("git", ["-C", repoRoot, "log", "-1", "--format=%h %s"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var p = Process.Start(psi)!;
            string s = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            var dirty = new ProcessStartInfo("git", ["-C", repoRoot, "status", "--porcelain", "--", "src"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var d = Process.Start(dirty)!;
            bool isDirty = d.StandardOutput.ReadToEnd().Trim().Length > 0;
            d.WaitForExit();
            return s + (isDirty ? " (+ uncommitted changes in src/)" : "");
        }
        catch (Exception e)
        {
            return "unknown (" + e.Message + ")";
        }
    }
}
