using System.Globalization;
using System.Text;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>What identifies a tree's processes in session mode.</summary>
/// <param name="SessionId">The child's PID, which is also its session and process group id; <c>null</c> when it can no longer be trusted.</param>
/// <param name="TreeTag">The exact environment entry <c>CORRAL_TREE_ID=&lt;id&gt;</c>.</param>
/// <param name="PipeLinks">readlink text (<c>pipe:[ino]</c>) of the tree's stdout and stderr pipes.</param>
internal sealed record TreeCriteria(int? SessionId, string TreeTag, IReadOnlyList<string> PipeLinks);

/// <summary>Reads /proc to find a tree's members. Every read tolerates the process vanishing mid-scan.</summary>
internal static class ProcScanner
{
    /// <summary>Ourselves, every ancestor, and PID 1: never signalled, whatever they hold.</summary>
    public static HashSet<int> ProtectedPids()
    {
        var result = new HashSet<int> { 1 };
        byte[] buffer = new byte[512];
        int pid = Environment.ProcessId;
        for (int depth = 0; pid > 1 && depth < 64 && result.Add(pid); depth++)
            pid = ReadStat(pid, ref buffer)?.ParentPid ?? 0;
        return result;
    }

    public static IEnumerable<int> AllPids()
    {
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out int pid))
                yield return pid;
        }
    }

    /// <summary>Every live process matching the criteria, with the first criterion it matched.</summary>
    public static List<(int Pid, FoundBy FoundBy)> FindMembers(TreeCriteria criteria, HashSet<int> protectedPids)
    {
        var members = new List<(int, FoundBy)>();
        byte[] buffer = new byte[4096];
        foreach (int pid in AllPids())
        {
            if (!protectedPids.Contains(pid) && Match(pid, criteria, ref buffer) is { } foundBy)
                members.Add((pid, foundBy));
        }

        return members;
    }

    /// <summary>How <paramref name="pid"/> belongs to the tree right now, or <c>null</c> (including when it is gone or a zombie).</summary>
    public static FoundBy? Match(int pid, TreeCriteria criteria, ref byte[] buffer)
    {
        if (ReadStat(pid, ref buffer) is not { } stat || stat.State is 'Z' or 'X')
            return null;
        if (stat.ProcessGroup == criteria.SessionId || stat.Session == criteria.SessionId)
            return FoundBy.ProcessGroup;
        if (HasEnvironmentEntry(pid, criteria.TreeTag, ref buffer))
            return FoundBy.EnvironmentTag;
        if (criteria.PipeLinks.Count > 0 && HoldsWriteEnd(pid, criteria.PipeLinks, ref buffer))
            return FoundBy.PipeHolder;
        return null;
    }

    public readonly record struct ProcStat(char State, int ParentPid, int ProcessGroup, int Session);

    public static ProcStat? ReadStat(int pid, ref byte[] buffer)
    {
        int n = Fd.ReadFile($"/proc/{pid}/stat", ref buffer);
        if (n <= 0)
            return null;

        // "pid (comm) S ppid pgrp session ..." where comm may contain spaces and parentheses.
        var span = buffer.AsSpan(0, n);
        int close = span.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= n)
            return null;
        var rest = Encoding.ASCII.GetString(span[(close + 2)..]).Split(' ', 5);
        if (rest.Length < 4)
            return null;
        return new ProcStat(rest[0][0], int.Parse(rest[1], CultureInfo.InvariantCulture),
            int.Parse(rest[2], CultureInfo.InvariantCulture), int.Parse(rest[3], CultureInfo.InvariantCulture));
    }

    /// <summary>An exact NUL-delimited entry: <c>CORRAL_TREE_ID=abc</c> does not match <c>CORRAL_TREE_ID=abcdef</c>.</summary>
    public static bool HasEnvironmentEntry(int pid, string entry, ref byte[] buffer)
    {
        int n = Fd.ReadFile($"/proc/{pid}/environ", ref buffer);
        if (n <= 0)
            return false;
        var environ = buffer.AsSpan(0, n);
        Span<byte> needle = stackalloc byte[entry.Length];
        Encoding.ASCII.GetBytes(entry, needle);
        int start = 0;
        while (start < environ.Length)
        {
            int end = environ[start..].IndexOf((byte)0);
            var item = end < 0 ? environ[start..] : environ.Slice(start, end);
            if (item.SequenceEqual(needle))
                return true;
            if (end < 0)
                break;
            start += end + 1;
        }

        return false;
    }

    /// <summary>Whether any fd of <paramref name="pid"/> is the write end of one of the pipes (readlink + fdinfo, never stat).</summary>
    public static bool HoldsWriteEnd(int pid, IReadOnlyList<string> pipeLinks, ref byte[] buffer)
    {
        IEnumerable<string> fds;
        try
        {
            fds = Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd");
            foreach (string fdPath in fds)
            {
                string? link = Fd.ReadLink(fdPath);
                if (link is null || !Contains(pipeLinks, link))
                    continue;
                if (IsWritable(pid, Path.GetFileName(fdPath), ref buffer))
                    return true;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The process exited or is not ours to inspect.
        }

        return false;
    }

    /// <summary>The descriptors of <paramref name="pid"/> that are the write end of the pipe named <paramref name="pipeLink"/>.</summary>
    public static List<int> WriteEndDescriptors(int pid, string pipeLink, ref byte[] buffer)
    {
        var result = new List<int>();
        try
        {
            foreach (string fdPath in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                string name = Path.GetFileName(fdPath);
                if (Fd.ReadLink(fdPath) == pipeLink && IsWritable(pid, name, ref buffer))
                    result.Add(int.Parse(name, CultureInfo.InvariantCulture));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Gone, or not ours to inspect.
        }

        result.Sort();
        return result;
    }

    private static bool Contains(IReadOnlyList<string> links, string link)
    {
        foreach (string l in links)
        {
            if (l == link)
                return true;
        }

        return false;
    }

    private static bool IsWritable(int pid, string fd, ref byte[] buffer)
    {
        int n = Fd.ReadFile($"/proc/{pid}/fdinfo/{fd}", ref buffer);
        if (n <= 0)
            return false;
        var text = Encoding.ASCII.GetString(buffer, 0, n);
        int at = text.IndexOf("flags:", StringComparison.Ordinal);
        if (at < 0)
            return false;
        var digits = text.AsSpan(at + 6).TrimStart();
        int len = 0;
        while (len < digits.Length && char.IsAsciiDigit(digits[len]))
            len++;
        int flags = Convert.ToInt32(digits[..len].ToString(), 8);
        return (flags & Libc.O_ACCMODE) != Libc.O_RDONLY;
    }

    /// <summary>The command line with NULs as spaces, capped at 200 characters.</summary>
    public static string CommandLine(int pid)
    {
        byte[] buffer = new byte[512];
        int n = Fd.ReadFile($"/proc/{pid}/cmdline", ref buffer, 4096);
        if (n <= 0)
        {
            n = Fd.ReadFile($"/proc/{pid}/comm", ref buffer);
            return n <= 0 ? "" : "[" + Encoding.UTF8.GetString(buffer, 0, n).Trim() + "]";
        }

        string text = Encoding.UTF8.GetString(buffer, 0, n).Replace('\0', ' ').Trim();
        return text.Length <= 200 ? text : text[..199] + "…";
    }

    /// <summary>The cgroup v2 path (relative to the hierarchy root) of a process, from its "0::" line.</summary>
    public static string? CgroupOf(int pid)
    {
        byte[] buffer = new byte[1024];
        int n = Fd.ReadFile($"/proc/{pid}/cgroup", ref buffer);
        if (n <= 0)
            return null;
        foreach (string line in Encoding.UTF8.GetString(buffer, 0, n).Split('\n'))
        {
            if (line.StartsWith("0::", StringComparison.Ordinal))
                return line[3..];
        }

        return null;
    }
}
