using System.Runtime.InteropServices;
using System.Text;

namespace Corral.Benchmarks.Harness;

/// <summary>
/// The few libc calls the harness needs for its own baselines (raw spawn, kernel-only teardown) and for its
/// leak checks. Independent of Corral's internals on purpose: a baseline must not share the code it is compared to.
/// </summary>
internal static unsafe partial class Native
{
    private const string Libc = "libc";

    public const int O_RDONLY = 0, O_WRONLY = 1, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    public const int F_GETFL = 3, F_SETFL = 4, F_SETPIPE_SZ = 1031, F_GETPIPE_SZ = 1032;
    public const int EINTR = 4, EAGAIN = 11, ESRCH = 3;
    public const short POLLIN = 1, POLLHUP = 0x10, POLLERR = 0x8;
    public const int SIGKILL = 9, SIGTERM = 15;
    public const int P_PID = 1, P_PIDFD = 3, WEXITED = 4, WNOHANG = 1;
    public const short POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08, POSIX_SPAWN_SETSID = 0x80;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport(Libc, SetLastError = true)] public static partial int pipe2(int* fds, int flags);
    [LibraryImport(Libc, SetLastError = true)] public static partial int open(byte* path, int flags, int mode);
    [LibraryImport(Libc, SetLastError = true)] public static partial int close(int fd);
    [LibraryImport(Libc, SetLastError = true)] public static partial int ioctl(int fd, nuint request, int* arg);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint read(int fd, byte* buffer, nint count);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint write(int fd, byte* buffer, nint count);
    [LibraryImport(Libc, SetLastError = true)] public static partial int fcntl(int fd, int cmd, int arg);
    [LibraryImport(Libc, SetLastError = true)] public static partial int poll(PollFd* fds, nuint count, int timeoutMs);
    [LibraryImport(Libc, SetLastError = true)] public static partial int kill(int pid, int signal);
    [LibraryImport(Libc, SetLastError = true)] public static partial int waitid(int idType, int id, byte* info, int options);
    [LibraryImport(Libc, SetLastError = true)] public static partial nint readlink(byte* path, byte* buffer, nint size);
    [LibraryImport(Libc, SetLastError = true)] private static partial long syscall(long number, long a1, long a2, long a3, long a4);
    [LibraryImport(Libc)] public static partial int posix_spawn(out int pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);
    [LibraryImport(Libc)] public static partial int posix_spawnattr_init(void* attr);
    [LibraryImport(Libc)] public static partial int posix_spawnattr_destroy(void* attr);
    [LibraryImport(Libc)] public static partial int posix_spawnattr_setflags(void* attr, short flags);
    [LibraryImport(Libc)] public static partial int posix_spawnattr_setsigdefault(void* attr, void* sigset);
    [LibraryImport(Libc)] public static partial int posix_spawnattr_setsigmask(void* attr, void* sigset);
    [LibraryImport(Libc)] public static partial int posix_spawn_file_actions_init(void* actions);
    [LibraryImport(Libc)] public static partial int posix_spawn_file_actions_destroy(void* actions);
    [LibraryImport(Libc)] public static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);
    [LibraryImport(Libc)] public static partial int sigemptyset(void* set);
    [LibraryImport(Libc)] public static partial int sigaddset(void* set, int signal);
    [LibraryImport(Libc)] public static partial nint gnu_get_libc_version();

    public static int pidfd_open(int pid) => (int)syscall(434, pid, 0, 0, 0);

    public static int pidfd_send_signal(int pidfd, int signal) => (int)syscall(424, pidfd, signal, 0, 0);

    public static int LastError => Marshal.GetLastPInvokeError();

    public static string LibcVersion() => Marshal.PtrToStringUTF8(gnu_get_libc_version()) ?? "?";

    public static (int Read, int Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (pipe2(fds, O_CLOEXEC) != 0)
            throw new IOException($"pipe2 failed: errno {LastError}");
        return (fds[0], fds[1]);
    }

    public static void SetNonBlocking(int fd) => fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);

    public static int OpenPath(string path, int flags)
    {
        Span<byte> p = stackalloc byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, p);
        p[^1] = 0;
        fixed (byte* ptr = p)
            return open(ptr, flags | O_CLOEXEC, 0);
    }

    /// <summary>Reads a small file (a /proc or cgroup entry); -1 when it cannot be opened.</summary>
    public static int ReadFile(string path, ref byte[] buffer)
    {
        int fd = OpenPath(path, O_RDONLY);
        if (fd < 0)
            return -1;
        try
        {
            int total = 0;
            while (true)
            {
                if (total == buffer.Length)
                    Array.Resize(ref buffer, buffer.Length * 2);
                nint n;
                fixed (byte* b = &buffer[total])
                    n = read(fd, b, buffer.Length - total);
                if (n < 0 && LastError == EINTR)
                    continue;
                if (n <= 0)
                    return total;
                total += (int)n;
            }
        }
        finally
        {
            close(fd);
        }
    }

    public static bool WriteFile(string path, string text)
    {
        int fd = OpenPath(path, O_WRONLY);
        if (fd < 0)
            return false;
        try
        {
            byte[] bytes = Encoding.ASCII.GetBytes(text);
            fixed (byte* b = bytes)
                return write(fd, b, bytes.Length) == bytes.Length;
        }
        finally
        {
            close(fd);
        }
    }

    public static string? ReadLink(string path)
    {
        Span<byte> p = stackalloc byte[Encoding.UTF8.GetByteCount(path) + 1];
        Encoding.UTF8.GetBytes(path, p);
        p[^1] = 0;
        byte* buffer = stackalloc byte[256];
        fixed (byte* ptr = p)
        {
            nint n = readlink(ptr, buffer, 256);
            return n <= 0 ? null : Encoding.ASCII.GetString(buffer, (int)n);
        }
    }
}
