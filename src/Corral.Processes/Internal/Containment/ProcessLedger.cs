using System.Buffers.Text;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>The live-process ledger of a tree: each member's facts from /proc/PID/stat and its command line.</summary>
internal static class ProcessLedger
{
    private static readonly long s_ticksPerSecond = Libc.sysconf(Libc._SC_CLK_TCK) is > 0 and var t ? t : 100;

    /// <summary>The members that are still alive (a zombie, or a process gone meanwhile, is left out), by PID.</summary>
    public static IReadOnlyList<LiveProcess> Read(List<(int Pid, FoundBy FoundBy)> members)
    {
        var result = new List<LiveProcess>(members.Count);
        byte[] buffer = new byte[1024];
        foreach (var (pid, foundBy) in members)
        {
            // A probe of the PID window can land on a thread of a member (threads share the PID space): list processes.
            if (!IsProcess(pid, ref buffer) || ReadStat(pid, ref buffer) is not { } stat || stat.State is 'Z' or 'X')
                continue;
            string command = ProcScanner.CommandLine(pid);
            result.Add(new LiveProcess(pid, stat.ParentPid, command, State(stat.State), stat.RssPages * Environment.SystemPageSize,
                TimeSpan.FromSeconds((double)(stat.UserTicks + stat.SystemTicks) / s_ticksPerSecond), foundBy));
        }

        result.Sort(static (a, b) => a.Pid.CompareTo(b.Pid));
        return result;
    }

    /// <summary>Whether <paramref name="pid"/> leads its thread group (the Tgid: line of /proc/PID/status names itself).</summary>
    private static bool IsProcess(int pid, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "status"u8, ref buffer);
        if (n <= 0)
            return false;
        var status = buffer.AsSpan(0, n);
        int at = status.IndexOf("\nTgid:\t"u8);
        return at >= 0 && Utf8Parser.TryParse(status[(at + 7)..], out int tgid, out _) && tgid == pid;
    }

    /// <summary>The state letter of /proc/PID/stat as a <see cref="ProcessState"/>. A pure function.</summary>
    public static ProcessState State(char letter) => letter switch
    {
        'R' => ProcessState.Running,
        'S' => ProcessState.Sleeping,
        'D' => ProcessState.UninterruptibleSleep,
        'T' => ProcessState.Stopped,
        't' => ProcessState.Traced,
        'I' => ProcessState.Idle,
        _ => ProcessState.Other,
    };

    internal readonly record struct Stat(char State, int ParentPid, long UserTicks, long SystemTicks, long RssPages);

    /// <summary>Fields 3 (state), 4 (ppid), 14 (utime), 15 (stime) and 24 (rss) of /proc/PID/stat.</summary>
    internal static Stat? ReadStat(int pid, ref byte[] buffer)
    {
        int n = ProcFs.ReadFile(pid, "stat"u8, ref buffer);
        return n <= 0 ? null : ParseStat(buffer.AsSpan(0, n));
    }

    /// <summary>The fields of a /proc/PID/stat line, whose command name may hold spaces and parentheses. A pure function.</summary>
    internal static Stat? ParseStat(ReadOnlySpan<byte> span)
    {
        int close = span.LastIndexOf((byte)')');
        if (close < 0 || close + 2 >= span.Length)
            return null;

        // After "pid (comm) ": field 3 onwards, space-separated.
        var fields = span[(close + 2)..];
        char state = (char)fields[0];
        long ppid = 0, utime = 0, stime = 0, rss = 0;
        int field = 3;
        foreach (var range in fields.Split((byte)' '))
        {
            var text = fields[range];
            long value = 0;
            if (field is 4 or 14 or 15 or 24 && !Utf8Parser.TryParse(text, out value, out _))
                return null;
            switch (field)
            {
                case 4: ppid = value; break;
                case 14: utime = value; break;
                case 15: stime = value; break;
                case 24: rss = value; break;
            }

            if (++field > 24)
                break;
        }

        return field > 24 ? new Stat(state, (int)ppid, utime, stime, rss) : null;
    }
}
