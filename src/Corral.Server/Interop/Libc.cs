using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Interop;

/// <summary>The few libc calls the server makes itself: durable writes, free space, directories by descriptor (glibc, Linux).</summary>
internal static partial class Libc
{
    public const int ENOSPC = 28;
    public const int EDQUOT = 122;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fdatasync(SafeFileHandle fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int statvfs(string path, out StatVfs buf);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int syncfs(SafeFileHandle fd);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int lchown(string path, int owner, int group);

    [LibraryImport("libc")]
    public static partial int geteuid();

    /// <summary>Gives a file or directory (never the target of a link) to <paramref name="uid"/>:<paramref name="gid"/>. Throws on failure.</summary>
    public static void Chown(string path, int uid, int gid)
    {
        if (lchown(path, uid, gid) != 0)
            throw new IOException($"chown {path} to {uid}:{gid} failed: errno {Marshal.GetLastPInvokeError()}", Marshal.GetLastPInvokeError());
    }

    private const int EEXIST = 17;
    private const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int openat(SafeFileHandle dirfd, string path, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mkdirat(SafeFileHandle dirfd, string path, uint mode);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchown(SafeFileHandle fd, int owner, int group);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fchmod(SafeFileHandle fd, uint mode);

    private const int LOCK_EX = 2, LOCK_NB = 4, EWOULDBLOCK = 11;

    [LibraryImport("libc", SetLastError = true)]
    private static partial int flock(SafeFileHandle fd, int operation);

    /// <summary>Takes an exclusive <c>flock</c> on <paramref name="fd"/> without waiting: <c>false</c> when another open file holds one. Throws on any other failure.</summary>
    public static bool TryLockExclusive(SafeFileHandle fd)
    {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return true;
        int errno = Marshal.GetLastPInvokeError();
        return errno == EWOULDBLOCK ? false : throw new IOException($"flock failed: errno {errno}", errno);
    }

    /// <summary>Opens an existing directory, refusing a symbolic link in its last component (<c>O_NOFOLLOW</c>).</summary>
    public static SafeFileHandle OpenDirectory(string path) =>
        Handle(open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), path);

    /// <summary>
    /// The directory <paramref name="name"/> in <paramref name="parent"/>, made (0, then <paramref name="mode"/> and
    /// <paramref name="uid"/>:<paramref name="gid"/> through its descriptor) if missing; with <paramref name="claim"/>,
    /// one that exists is given that owner and mode too. A symbolic link there is refused (ELOOP/ENOTDIR), never followed.
    /// </summary>
    public static SafeFileHandle OpenOrMakeDirectory(SafeFileHandle parent, string name, uint mode, int uid, int gid, bool claim = false)
    {
        bool created = mkdirat(parent, name, 0) == 0;
        if (!created && Marshal.GetLastPInvokeError() != EEXIST)
            throw new IOException($"mkdir {name} failed: errno {Marshal.GetLastPInvokeError()}", Marshal.GetLastPInvokeError());
        var directory = Handle(openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), name);
        if ((created || claim) && (fchown(directory, uid, gid) != 0 || fchmod(directory, mode) != 0))
        {
            int errno = Marshal.GetLastPInvokeError();
            directory.Dispose();
            throw new IOException($"chown/chmod {name} failed: errno {errno}", errno);
        }

        return directory;
    }

    private static SafeFileHandle Handle(int fd, string path)
    {
        if (fd < 0)
            throw new IOException($"open {path} as a directory failed (a symbolic link or not a directory?): errno {Marshal.GetLastPInvokeError()}", Marshal.GetLastPInvokeError());
        return new SafeFileHandle(fd, ownsHandle: true);
    }

    /// <summary>The kernel's <c>struct statvfs</c> on 64-bit Linux.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct StatVfs
    {
        public ulong Bsize;
        public ulong Frsize;
        public ulong Blocks;
        public ulong Bfree;
        public ulong Bavail;
        public ulong Files;
        public ulong Ffree;
        public ulong Favail;
        public ulong Fsid;
        public ulong Flag;
        public ulong Namemax;
        private unsafe fixed int _spare[6];
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint realpath(string path, nint resolved);

    [LibraryImport("libc")]
    private static partial void free(nint pointer);

    /// <summary>The canonical path of an existing <paramref name="path"/>, every symbolic link resolved; <c>null</c> if it does not resolve.</summary>
    public static string? RealPath(string path)
    {
        nint resolved = realpath(path, 0);
        if (resolved == 0)
            return null;
        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            free(resolved);
        }
    }

    /// <summary>Makes a file's data (and the size needed to read it) durable. Throws on failure.</summary>
    public static void DataSync(SafeFileHandle file)
    {
        if (fdatasync(file) != 0)
            throw new IOException($"fdatasync failed: errno {Marshal.GetLastPInvokeError()}", Marshal.GetLastPInvokeError());
    }

    /// <summary>Makes everything written to the file system that holds <paramref name="anyFile"/> durable: one call for many files.</summary>
    public static void SyncFileSystem(SafeFileHandle anyFile)
    {
        if (syncfs(anyFile) != 0)
            throw new IOException($"syncfs failed: errno {Marshal.GetLastPInvokeError()}", Marshal.GetLastPInvokeError());
    }

    /// <summary>Bytes an unprivileged writer can still allocate on the file system of <paramref name="path"/>; null if unknown.</summary>
    public static long? AvailableBytes(string path) =>
        statvfs(path, out var s) == 0 ? (long)Math.Min(s.Bavail * s.Frsize, long.MaxValue) : null;
}
