using System.Buffers.Text;
using Corral.Processes.Interop;

namespace Corral.Processes.Internal.Io;

/// <summary>
/// Allocation-free access to /proc for the scans: paths are formatted into stack buffers, directories are listed
/// with readdir (never stat: a stat of /proc/PID/fd/N follows the link and can block on a process in D state),
/// and file contents land in a caller's reusable buffer.
/// </summary>
internal static unsafe class ProcFs
{
    private const int PathCapacity = 64;

    /// <summary>"/proc/PID/SUFFIX" or "/proc/PID/SUFFIX/N", NUL-terminated; returns the length without the NUL.</summary>
    public static int Format(Span<byte> destination, int pid, ReadOnlySpan<byte> suffix, int n = -1)
    {
        "/proc/"u8.CopyTo(destination);
        int length = 6;
        Utf8Formatter.TryFormat(pid, destination[length..], out int written);
        length += written;
        destination[length++] = (byte)'/';
        suffix.CopyTo(destination[length..]);
        length += suffix.Length;
        if (n >= 0)
        {
            destination[length++] = (byte)'/';
            Utf8Formatter.TryFormat(n, destination[length..], out written);
            length += written;
        }

        destination[length] = 0;
        return length;
    }

    /// <summary>Reads /proc/PID/SUFFIX (whole, up to <paramref name="maxBytes"/>) into <paramref name="buffer"/>; -1 when it cannot be opened.</summary>
    public static int ReadFile(int pid, ReadOnlySpan<byte> suffix, ref byte[] buffer, int maxBytes = 1 << 20)
    {
        byte* path = stackalloc byte[PathCapacity];
        Format(new Span<byte>(path, PathCapacity), pid, suffix);
        return Fd.ReadFile(path, ref buffer, maxBytes);
    }

    /// <summary>What <see cref="EffectiveUid"/> returns when statx cannot tell (refused by a seccomp filter or an LSM, say): look closer.</summary>
    public const long UidUnknown = -3;

    /// <summary>
    /// The effective uid of <paramref name="pid"/>, -1 when it is gone, or <see cref="UidUnknown"/>: the owner of the
    /// /proc/PID directory, which is always the process's effective uid (the files in it show root for a process that
    /// is not dumpable). One statx, which touches neither the process's memory nor its descriptors: far cheaper than
    /// reading its status.
    /// </summary>
    public static long EffectiveUid(int pid)
    {
        byte* path = stackalloc byte[PathCapacity];
        Format(new Span<byte>(path, PathCapacity), pid, ""u8);
        byte* statx = stackalloc byte[Libc.StatxBufferSize];
        if (Libc.statx(Libc.AT_FDCWD, path, 0, Libc.STATX_UID, statx) != 0)
            return Libc.LastError is Libc.ENOENT or Libc.ESRCH ? -1 : UidUnknown;
        return (*(uint*)statx & Libc.STATX_UID) != 0 ? *(uint*)(statx + Libc.StatxUidOffset) : UidUnknown;
    }

    /// <summary>
    /// One read(2) of /proc/PID/SUFFIX into <paramref name="destination"/>: the length (0 when empty or gone), or -1
    /// when it cannot be opened. For files whose useful part fits, like the start of cmdline: no second read for EOF.
    /// </summary>
    public static int ReadOnce(int pid, ReadOnlySpan<byte> suffix, Span<byte> destination)
    {
        byte* path = stackalloc byte[PathCapacity];
        Format(new Span<byte>(path, PathCapacity), pid, suffix);
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        try
        {
            nint n;
            fixed (byte* d = destination)
            {
                do
                    n = Libc.read(fd, d, destination.Length);
                while (n < 0 && Libc.LastError == Libc.EINTR);
            }

            return n < 0 ? 0 : (int)n;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Reads /proc/PID/SUFFIX/N (e.g. fdinfo/3) into <paramref name="buffer"/>; -1 when it cannot be opened.</summary>
    public static int ReadFile(int pid, ReadOnlySpan<byte> suffix, int n, ref byte[] buffer)
    {
        byte* path = stackalloc byte[PathCapacity];
        Format(new Span<byte>(path, PathCapacity), pid, suffix, n);
        return Fd.ReadFile(path, ref buffer);
    }

    /// <summary>readlink of /proc/PID/fd/N into <paramref name="destination"/>; the length, or -1.</summary>
    public static int ReadFdLink(int pid, int fd, Span<byte> destination)
    {
        byte* path = stackalloc byte[PathCapacity];
        Format(new Span<byte>(path, PathCapacity), pid, "fd"u8, fd);
        fixed (byte* d = destination)
            return (int)Libc.readlink(path, d, destination.Length);
    }

    /// <summary>The numeric entries of a directory (/proc, or /proc/PID/fd), appended to <paramref name="into"/>; false if it cannot be opened.</summary>
    public static bool ListNumeric(byte* directory, List<int> into)
    {
        nint dir = Libc.opendir(directory);
        if (dir == 0)
            return false;
        try
        {
            byte* entry;
            while ((entry = Libc.readdir(dir)) != null)
            {
                byte* name = entry + Libc.DirentNameOffset;
                if (ParseNumber(name) is var n and >= 0)
                    into.Add(n);
            }

            return true;
        }
        finally
        {
            Libc.closedir(dir);
        }
    }

    public static void ListPids(List<int> into)
    {
        byte* proc = stackalloc byte[] { (byte)'/', (byte)'p', (byte)'r', (byte)'o', (byte)'c', 0 };
        ListNumeric(proc, into);
    }

    public static bool ListFds(int pid, List<int> into)
    {
        byte* path = stackalloc byte[PathCapacity];
        Format(new Span<byte>(path, PathCapacity), pid, "fd"u8);
        return ListNumeric(path, into);
    }

    /// <summary>The last PID the kernel handed out in our PID namespace (/proc/sys/kernel/ns_last_pid); -1 if unreadable.</summary>
    public static int LastPid() => ReadNumber("/proc/sys/kernel/ns_last_pid");

    /// <summary>PIDs are below this (/proc/sys/kernel/pid_max); -1 if unreadable.</summary>
    public static int MaxPid() => ReadNumber("/proc/sys/kernel/pid_max");

    private static int ReadNumber(string path)
    {
        byte[] buffer = new byte[32];
        int n = Fd.ReadFile(path, ref buffer);
        return n > 0 && int.TryParse(buffer.AsSpan(0, n).Trim((byte)'\n'), out int v) ? v : -1;
    }

    /// <summary>A NUL-terminated run of ASCII digits as a non-negative int; -1 otherwise.</summary>
    private static int ParseNumber(byte* s)
    {
        if (*s == 0)
            return -1;
        long value = 0;
        for (; *s != 0; s++)
        {
            uint digit = (uint)(*s - '0');
            if (digit > 9)
                return -1;
            value = value * 10 + digit;
            if (value > int.MaxValue)
                return -1;
        }

        return (int)value;
    }
}
