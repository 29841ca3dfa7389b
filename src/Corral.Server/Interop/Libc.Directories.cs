using System.Runtime.InteropServices;

namespace Corral.Server.Interop;

/// <summary>
/// Directories listed by their raw names through descriptors: nothing is decoded (a name that is not UTF-8 is still
/// found) and nothing is resolved by path (a name swapped for a link meanwhile is refused, never followed).
/// </summary>
internal static partial class Libc
{
    public const int ENOENT = 2, EACCES = 13, ENOTDIR = 20, ELOOP = 40;

    // struct statx has one layout on every architecture (struct stat's st_uid moves between x86-64 and arm64).
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_MODE = 0x2, STATX_UID = 0x8, STATX_GID = 0x10;

    // glibc's struct dirent on 64-bit Linux: d_ino, d_off, d_reclen, d_type, then the name.
    private const int DirentNameOffset = 19;

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int statx(int dirfd, byte* path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", SetLastError = true)]
    private static unsafe partial int openat(int dirfd, byte* path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint fdopendir(int fd);

    [LibraryImport("libc", SetLastError = true)]
    private static partial nint readdir(nint dir);

    [LibraryImport("libc")]
    private static partial int closedir(nint dir);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    /// <summary>One open directory, from a path or from its parent's descriptor, a link never followed.</summary>
    public sealed unsafe class RawDirectory : IDisposable
    {
        private nint _dir;
        private readonly int _fd;

        private RawDirectory(nint dir, int fd) => (_dir, _fd) = (dir, fd);

        /// <summary>The directory at <paramref name="path"/>, or <c>null</c> with the errno.</summary>
        public static RawDirectory? Open(byte[] path, out int errno) => OpenAt(-100, path, out errno); // AT_FDCWD

        /// <summary>The directory <paramref name="name"/> in this one, or <c>null</c> with the errno (ELOOP or ENOTDIR for a link).</summary>
        public RawDirectory? OpenChild(byte[] name, out int errno) => OpenAt(_fd, name, out errno);

        private static RawDirectory? OpenAt(int dirfd, byte[] name, out int errno)
        {
            int fd;
            fixed (byte* path = Terminated(name))
                fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
            {
                errno = Marshal.GetLastPInvokeError();
                return null;
            }

            nint dir = fdopendir(fd);
            if (dir == 0)
            {
                errno = Marshal.GetLastPInvokeError();
                close(fd);
                return null;
            }

            errno = 0;
            return new RawDirectory(dir, fd);
        }

        /// <summary>The errno of the last <see cref="Next"/> that returned <c>null</c>: 0 at the end of the directory.</summary>
        public int LastError { get; private set; }

        /// <summary>The next name (never <c>.</c> or <c>..</c>); <c>null</c> at the end, or on an error (<see cref="LastError"/>).</summary>
        public byte[]? Next()
        {
            while (true)
            {
                nint entry = readdir(_dir); // LibraryImport clears errno before the call
                if (entry == 0)
                {
                    LastError = Marshal.GetLastPInvokeError();
                    return null;
                }

                var name = MemoryMarshal.CreateReadOnlySpanFromNullTerminated((byte*)entry + DirentNameOffset);
                if (name.SequenceEqual("."u8) || name.SequenceEqual(".."u8))
                    continue;
                return name.ToArray();
            }
        }

        /// <summary>The owner, group and mode (type bits included) of <paramref name="name"/> in this directory, itself and not a link's target; 0 or the errno.</summary>
        public int Owner(byte[] name, out int uid, out int gid, out int mode)
        {
            byte* buffer = stackalloc byte[256];
            int rc;
            fixed (byte* path = Terminated(name))
                rc = statx(_fd, path, AT_SYMLINK_NOFOLLOW, STATX_UID | STATX_GID | STATX_MODE, buffer);
            if (rc != 0)
            {
                (uid, gid, mode) = (-1, -1, 0);
                return Marshal.GetLastPInvokeError();
            }

            uid = (int)*(uint*)(buffer + 20);
            gid = (int)*(uint*)(buffer + 24);
            mode = *(ushort*)(buffer + 28);
            return 0;
        }

        private static byte[] Terminated(byte[] name) => [.. name, 0];

        public void Dispose()
        {
            if (_dir != 0)
                closedir(_dir); // closes the descriptor too
            _dir = 0;
        }
    }
}
