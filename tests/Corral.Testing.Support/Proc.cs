using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Corral.Testing.Support;

/// <summary>Facts about processes, read from /proc, signals to the ones a test started, and condition waits with deadlines.</summary>
public static partial class Proc
{
    public const int SIGINT = 2;
    public const int SIGKILL = 9;
    public const int SIGTERM = 15;

    /// <summary>Runs <paramref name="program"/> to its end (at most 30 s); throws unless it exits 0.</summary>
    public static void Run(string program, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardError = true })!;
        var error = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000))
        {
            p.Kill();
            throw new TimeoutException($"{program} did not finish within 30 s");
        }

        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited {p.ExitCode}: {error.Result}");
    }

    /// <summary>Present in /proc and not a zombie. A zombie has exited: it only waits for its parent to reap it.</summary>
    public static bool IsAlive(int pid) => State(pid) is not ('-' or 'Z' or 'X');

    /// <summary>The state letter from /proc/PID/stat (R, S, Z…), or '-' when the process is gone.</summary>
    public static char State(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2];
        }
        catch (IOException)
        {
            return '-';
        }
    }

    /// <summary>The parent PID from /proc/PID/stat, or 0 when the process is gone.</summary>
    /// <summary>A process's resident memory (VmRSS), in bytes; 0 when it is gone.</summary>
    public static long ResidentBytes(int pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    return long.Parse(line[6..].Trim().Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return 0;
    }

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

    /// <summary>The command line with NULs as spaces; empty when the process is gone.</summary>
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

    /// <summary>The real, effective, saved and filesystem uid from /proc/PID/status; <c>null</c> when the process is gone.</summary>
    public static int[]? Uids(int pid) => StatusField(pid, "Uid:")?.Split('\t', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

    /// <summary>A field of /proc/PID/status without its name (e.g. <c>"NoNewPrivs:"</c> → <c>"1"</c>); <c>null</c> when absent or gone.</summary>
    public static string? StatusField(int pid, string name)
    {
        try
        {
            return File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith(name, StringComparison.Ordinal))?[name.Length..].Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>
    /// Why <c>/dev/mqueue</c> is not a mount of the POSIX message queue file system here, as it is on systemd hosts
    /// (<c>.ci/run</c> mounts one where it is missing), or <c>null</c> when it is.
    /// </summary>
    public static string? MessageQueueMountMissing() =>
        File.ReadLines("/proc/self/mountinfo").Any(l => l.Split(' ') is [_, _, _, _, "/dev/mqueue", ..] && l.Contains(" - mqueue ", StringComparison.Ordinal))
            ? null
            : "No POSIX message queue file system at /dev/mqueue (systemd hosts mount one; as root: mkdir -p /dev/mqueue && mount -t mqueue mqueue /dev/mqueue).";

    /// <summary>
    /// A uid that no passwd entry names and no live process runs as, picked at random from a range far above any
    /// allocator's (so two tests, or two runs, do not pick the same one): a uid a test can declare exclusive to a tree.
    /// </summary>
    public static int UnusedUid()
    {
        var named = File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Where(f => f.Length > 2).Select(f => f[2]).ToHashSet();
        var running = new HashSet<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out int pid) && Uids(pid) is { } ids)
                running.UnionWith(ids);
        }

        while (true)
        {
            int uid = Random.Shared.Next(1_500_000_000, 2_000_000_000);
            if (!named.Contains(uid.ToString(System.Globalization.CultureInfo.InvariantCulture)) && !running.Contains(uid))
                return uid;
        }
    }

    /// <summary>Live processes whose environment carries <c>CORRAL_TREE_ID=treeId</c>.</summary>
    public static List<int> WithTreeId(string treeId) => WithEnvironment("CORRAL_TREE_ID=" + treeId);

    /// <summary>The live processes whose environment holds <paramref name="needle"/> (<c>NAME=value</c>), as /proc lists them now.</summary>
    public static List<int> WithEnvironment(string needle)
    {
        var found = new List<int>();
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
                // Gone meanwhile, or not ours to read.
            }
        }

        return found;
    }

    /// <summary>Sends <paramref name="signal"/> to <paramref name="pid"/>; false if it is already gone.</summary>
    public static bool Signal(int pid, int signal) => kill(pid, signal) == 0;

    /// <summary>
    /// A process as it was when the test saw it: its PID and its start time (clock ticks after boot). The pair names
    /// one process forever, where a PID alone may belong to another test's process by the time a cleanup runs.
    /// </summary>
    public readonly record struct Identity(int Pid, long StartTime);

    /// <summary>Who <paramref name="pid"/> is right now; <c>null</c> if it is gone. Call it while the process is known to be alive.</summary>
    public static Identity? Identify(int pid) => StartTime(pid) is { } start ? new Identity(pid, start) : null;

    /// <summary>SIGKILLs the process if it still lives (a cleanup for a test that failed half-way), never a recycled PID.</summary>
    public static void KillIfAlive(Identity? process)
    {
        if (process is { } p)
            KillIf(p.Pid, () => StartTime(p.Pid) == p.StartTime);
    }

    /// <summary>Sends <paramref name="signal"/> (e.g. SIGSTOP, SIGCONT) to the process if it still lives, never to a recycled PID; whether it was sent.</summary>
    public static bool Signal(Identity process, int signal) => SignalIf(process.Pid, signal, () => StartTime(process.Pid) == process.StartTime);

    /// <summary>
    /// SIGKILLs <paramref name="pid"/> only if it lives and its environment holds <paramref name="environmentEntry"/>
    /// (e.g. the scratch directory the test gave its scripts): a cleanup that only knows PIDs written to files.
    /// </summary>
    public static void KillIfAlive(int pid, string environmentEntry) =>
        KillIf(pid, () => HasEnvironmentEntry(pid, environmentEntry));

    private static void KillIf(int pid, Func<bool> stillOurs) => SignalIf(pid, SIGKILL, stillOurs);

    /// <summary>The check runs with a pidfd open, so a PID recycled after it cannot receive the signal.</summary>
    private static bool SignalIf(int pid, int signal, Func<bool> stillOurs)
    {
        if (pid <= 0)
            return false;
        int pidfd = pidfd_open(pid, 0);
        if (pidfd < 0)
            return false;
        try
        {
            return IsAlive(pid) && stillOurs() && pidfd_send_signal(pidfd, signal, 0, 0) == 0;
        }
        finally
        {
            close(pidfd);
        }
    }

    private static long? StartTime(int pid)
    {
        try
        {
            string stat = File.ReadAllText($"/proc/{pid}/stat");
            // Field 22; fields after the command name start at 3.
            return long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19]);
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool HasEnvironmentEntry(int pid, string entry)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/environ").Split('\0').Contains(entry);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Reads a PID a process wrote to a file, waiting until the file holds a number.</summary>
    public static async Task<int> ReadPidFileAsync(string path, TimeSpan timeout)
    {
        int pid = 0;
        await WaitForAsync(() => File.Exists(path) && int.TryParse(File.ReadAllText(path).Trim(), out pid) && pid > 0,
            timeout, $"a pid in {path}");
        return pid;
    }

    /// <summary>Polls <paramref name="condition"/> until it holds or <paramref name="deadline"/> passes; the last check decides.</summary>
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

    /// <summary>Polls an asynchronous <paramref name="condition"/> (an HTTP call, say) until it holds or <paramref name="deadline"/> passes.</summary>
    public static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan deadline, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            if (clock.Elapsed > deadline)
                throw new TimeoutException($"Timed out after {deadline.TotalSeconds:0.#} s waiting for {what}.");
            await Task.Delay(20);
        }
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial int kill(int pid, int sig);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pidfd_open(int pid, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int pidfd_send_signal(int pidfd, int sig, nint info, uint flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int close(int fd);
}
