using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>File descriptors: pipes, reads and writes, fcntl, readlink, access.</summary>
internal static unsafe partial class Libc
{
    internal const int O_RDONLY = 0x0;
    internal const int O_WRONLY = 0x1;
    internal const int O_RDWR = 0x2;
    internal const int O_ACCMODE = 0x3;
    internal const int O_NONBLOCK = 0x800;
    internal const int O_CLOEXEC = 0x80000;
    internal const int O_PATH = 0x200000;
    internal static readonly int O_DIRECTORY =
        System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture is System.Runtime.InteropServices.Architecture.Arm64 ? 0x4000 : 0x10000;

    internal const int F_DUPFD_CLOEXEC = 1030;
    internal const int F_GETFL = 3;
    internal const int F_SETFL = 4;
    internal const int F_SETPIPE_SZ = 1031;
    internal const int F_GETPIPE_SZ = 1032;

    internal const int F_OK = 0;
    internal const int X_OK = 1;
    internal const int W_OK = 2;

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int pipe2(int* fds, int flags);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int open(byte* path, int flags, int mode);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int close(int fd);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial nint read(int fd, byte* buffer, nint count);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial nint pread(int fd, byte* buffer, nint count, long offset);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial nint write(int fd, byte* buffer, nint count);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int fcntl(int fd, int cmd, int arg);

    /// <summary>struct stat starts with st_dev and st_ino (64-bit each) on x86-64 and arm64 alike.</summary>
    internal const int StatBufferSize = 256;
    internal const int StatInodeOffset = 8;

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int fstat(int fd, byte* statBuffer);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial nint readlink(byte* path, byte* buffer, nint size);

    /// <summary>struct statx has one layout on every architecture (struct stat's st_uid moves between x86-64 and arm64).</summary>
    internal const int StatxBufferSize = 256;
    internal const int StatxUidOffset = 20;
    internal const int AT_FDCWD = -100;
    internal const uint STATX_UID = 0x8;
    internal const uint STATX_INO = 0x100;
    internal const int StatxInoOffset = 32;
    internal const int StatxDevMajorOffset = 136;
    internal const int StatxDevMinorOffset = 140;

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int statx(int dirfd, byte* path, int flags, uint mask, byte* statxBuffer);

    [LibraryImport(Name, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int access(string path, int mode);

    [LibraryImport(Name, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int mkdir(string path, int mode);

    [LibraryImport(Name, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rmdir(string path);

    /// <summary>Directory streams: listing /proc and /proc/PID/fd must never stat an entry (a stat can block on a D-state process).</summary>
    [LibraryImport(Name, SetLastError = true)]
    internal static partial nint opendir(byte* path);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial byte* readdir(nint dir);

    [LibraryImport(Name)]
    internal static partial int closedir(nint dir);

    /// <summary>Offset of d_name in glibc's struct dirent: d_ino, d_off (8 bytes each on 64-bit), d_reclen (2), d_type (1).</summary>
    internal static readonly int DirentNameOffset = IntPtr.Size == 8 ? 19 : 11;

    internal const short POLLIN = 0x1;
    internal const short POLLHUP = 0x10;

    [StructLayout(LayoutKind.Sequential)]
    internal struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int getsid(int pid);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int getpgid(int pid);
}
