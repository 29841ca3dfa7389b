using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Corral.Agents.Interop;

/// <summary>Opening a file a task wrote, beneath a directory, without following a link anywhere on the way.</summary>
internal static unsafe partial class Libc
{
    private const long SYS_openat2 = 437;
    // The same values on x86-64 and arm64 (O_DIRECTORY and O_NOFOLLOW differ: RESOLVE_NO_SYMLINKS and KindOf do their work).
    private const int O_RDONLY = 0, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const ulong RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08;
    private const int AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 0x1, STATX_UID = 0x8, STATX_SIZE = 0x200;
    private const int S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000;

    [StructLayout(LayoutKind.Sequential)]
    private struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [LibraryImport("libc", SetLastError = true)]
    private static partial long syscall(long number, int dirfd, byte* path, OpenHow* how, nuint size);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int statx(int dirfd, byte* path, int flags, uint mask, byte* buffer);

    /// <summary>What a descriptor holds: whether it is a regular file or a directory, its owner and size.</summary>
    internal readonly record struct Kind(bool Regular, bool Directory, int Uid, long Size);

    /// <summary>
    /// Opens <paramref name="relative"/> beneath the directory <paramref name="root"/> (itself opened as given), read-only
    /// and without blocking (a FIFO opens at once): no component may be a symbolic link or leave the root. <c>null</c>
    /// when it cannot (missing, a link, a kernel before Linux 5.6).
    /// </summary>
    public static SafeFileHandle? OpenBeneath(SafeFileHandle root, string relative)
    {
        var how = new OpenHow { Flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC, Resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
        long fd;
        fixed (byte* path = System.Text.Encoding.UTF8.GetBytes(relative + "\0"))
            fd = syscall(SYS_openat2, (int)root.DangerousGetHandle(), path, &how, (nuint)sizeof(OpenHow));
        return fd < 0 ? null : new SafeFileHandle((nint)fd, ownsHandle: true);
    }

    /// <summary>Opens <paramref name="path"/> (links in it followed: the caller names it); whether it is a directory is <see cref="KindOf"/>'s to say.</summary>
    public static SafeFileHandle? OpenDirectory(string path)
    {
        var how = new OpenHow { Flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC };
        long fd;
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0"))
            fd = syscall(SYS_openat2, -100, p, &how, (nuint)sizeof(OpenHow)); // AT_FDCWD
        return fd < 0 ? null : new SafeFileHandle((nint)fd, ownsHandle: true);
    }

    /// <summary>What <paramref name="file"/> is, or <c>null</c>.</summary>
    public static Kind? KindOf(SafeFileHandle file)
    {
        byte* buffer = stackalloc byte[256];
        byte empty = 0;
        if (statx((int)file.DangerousGetHandle(), &empty, AT_EMPTY_PATH, STATX_TYPE | STATX_UID | STATX_SIZE, buffer) != 0)
            return null;
        int mode = *(ushort*)(buffer + 28), uid = (int)*(uint*)(buffer + 20);
        return new Kind((mode & S_IFMT) == S_IFREG, (mode & S_IFMT) == S_IFDIR, uid, (long)*(ulong*)(buffer + 40));
    }
}
