using System.Globalization;
using System.Text;

namespace Corral.Benchmarks.Harness;

/// <summary>
/// Every process a benchmark starts carries <c>BENCH_TAG=&lt;unique id&gt;</c> in its environment (setsid and
/// double-fork escapees inherit it). After each measured unit the harness scans /proc for that exact entry, reports
/// what is still alive, SIGKILLs it through a pidfd (re-checking the tag once the pidfd is open) and waits until it
/// is gone. Nothing without the tag is ever touched.
/// </summary>
internal static class Leftovers
{
    public const string TagVariable = "BENCH_TAG";

    private static long s_counter;

    /// <summary>Identifies this run: every tag starts with it, so a final sweep can find anything of the run.</summary>
    public static readonly string RunId = Guid.NewGuid().ToString("N")[..12];

    public static string NewTag() => $"{RunId}.{Interlocked.Increment(ref s_counter)}";

    /// <summary>Passing this as the tag matches every tag of this run (prefix match).</summary>
    public static string WholeRun => RunId + ".";

    public static IEnumerable<int> AllPids()
    {
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                yield return pid;
        }
    }

    public static int CountProcesses() => AllPids().Count();

    /// <summary>Live (non-zombie) processes carrying the tag.</summary>
    public static List<int> Find(string tag)
    {
        byte[] needle = Encoding.ASCII.GetBytes(TagVariable + "=" + tag);
        var result = new List<int>();
        byte[] buffer = new byte[8192];
        foreach (int pid in AllPids())
        {
            if (pid != Environment.ProcessId && HasTag(pid, needle, ref buffer))
                result.Add(pid);
        }

        return result;
    }

    private static bool HasTag(int pid, byte[] needle, ref byte[] buffer)
    {
        int n = Native.ReadFile($"/proc/{pid}/environ", ref buffer);
        if (n <= 0)
            return false;
        var span = buffer.AsSpan(0, n);
        int start = 0;
        while (start < span.Length)
        {
            int end = span[start..].IndexOf((byte)0);
            var item = end < 0 ? span[start..] : span.Slice(start, end);
            if (item.SequenceEqual(needle) || (needle[^1] == (byte)'.' && item.StartsWith(needle)))
                return true;
            if (end < 0)
                break;
            start += end + 1;
        }

        return false;
    }

    /// <summary>Kills every live process carrying the tag; returns how many there were (0 = nothing left behind).</summary>
    public static int KillAll(string tag, TimeSpan? wait = null)
    {
        byte[] needle = Encoding.ASCII.GetBytes(TagVariable + "=" + tag);
        var killed = new HashSet<int>();
        var deadline = DateTime.UtcNow + (wait ?? TimeSpan.FromSeconds(10));
        byte[] buffer = new byte[8192];
        while (DateTime.UtcNow < deadline)
        {
            var pids = Find(tag);
            if (pids.Count == 0)
                break;
            var pidfds = new List<int>();
            foreach (int pid in pids)
            {
                int pidfd = Native.pidfd_open(pid);
                if (pidfd < 0)
                    continue;
                if (HasTag(pid, needle, ref buffer) && Native.pidfd_send_signal(pidfd, Native.SIGKILL) == 0)
                {
                    killed.Add(pid);
                    pidfds.Add(pidfd);
                }
                else
                {
                    Native.close(pidfd);
                }
            }

            WaitGone(pidfds, deadline - DateTime.UtcNow);
            foreach (int fd in pidfds)
                Native.close(fd);
        }

        return killed.Count;
    }

    /// <summary>Waits until every pidfd reports exit; false on timeout.</summary>
    public static unsafe bool WaitGone(IReadOnlyList<int> pidfds, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        var pending = new List<int>(pidfds);
        var fds = new Native.PollFd[Math.Max(1, pending.Count)];
        while (pending.Count > 0)
        {
            int ms = (int)Math.Max(0, (deadline - DateTime.UtcNow).TotalMilliseconds);
            for (int i = 0; i < pending.Count; i++)
                fds[i] = new Native.PollFd { Fd = pending[i], Events = Native.POLLIN };
            int n;
            fixed (Native.PollFd* p = fds)
                n = Native.poll(p, (nuint)pending.Count, ms);
            if (n < 0 && Native.LastError == Native.EINTR)
                continue;
            if (n <= 0)
                return false;
            var still = new List<int>();
            for (int i = 0; i < pending.Count; i++)
            {
                if (fds[i].Revents == 0)
                    still.Add(pending[i]);
            }

            pending = still;
        }

        return true;
    }

    /// <summary>The comm (executable name) of a process, or null if it is gone.</summary>
    public static string? Comm(int pid)
    {
        byte[] buffer = new byte[64];
        int n = Native.ReadFile($"/proc/{pid}/comm", ref buffer);
        return n <= 0 ? null : Encoding.ASCII.GetString(buffer, 0, n).TrimEnd('\n');
    }
}
