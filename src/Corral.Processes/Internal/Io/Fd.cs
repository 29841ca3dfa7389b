using System.Text;
using Corral.Processes.Interop;

namespace Corral.Processes.Internal.Io;

/// <summary>Small helpers over raw descriptors and /proc files, with errno instead of exceptions.</summary>
internal static unsafe class Fd
{
    public static void Close(ref int fd)
    {
        if (fd >= 0)
        {
            Libc.close(fd);
            fd = -1;
        }
    }

    /// <summary>One read(2); returns the count, 0 at EOF, or -1 with <paramref name="errno"/> set.</summary>
    public static nint Read(int fd, Span<byte> buffer, out int errno)
    {
        fixed (byte* b = buffer)
        {
            nint n = Libc.read(fd, b, buffer.Length);
            errno = n < 0 ? Libc.LastError : 0;
            return n;
        }
    }

    /// <summary>One write(2); returns the count, or -1 with <paramref name="errno"/> set.</summary>
    public static nint Write(int fd, ReadOnlySpan<byte> buffer, out int errno)
    {
        fixed (byte* b = buffer)
        {
            nint n = Libc.write(fd, b, buffer.Length);
            errno = n < 0 ? Libc.LastError : 0;
            return n;
        }
    }

    public static void SetNonBlocking(int fd)
    {
        int flags = Libc.fcntl(fd, Libc.F_GETFL, 0);
        if (flags >= 0)
            Libc.fcntl(fd, Libc.F_SETFL, flags | Libc.O_NONBLOCK);
    }

    /// <summary>Creates a close-on-exec pipe: both ends are invisible to every other child.</summary>
    public static (int Read, int Write) CreatePipe()
    {
        int* fds = stackalloc int[2];
        if (Libc.pipe2(fds, Libc.O_CLOEXEC) != 0)
            throw new ProcessSpawnException(SpawnFailure.SystemError, "pipe2", Libc.Describe(Libc.LastError), Libc.LastError);
        return (fds[0], fds[1]);
    }

    /// <summary>readlink(2) of a /proc path. Never stat: that can block on a process in D state.</summary>
    public static string? ReadLink(string path)
    {
        byte* p = stackalloc byte[512];
        byte* buffer = stackalloc byte[256];
        if (!Utf8Z(path, p, 512))
            return null;
        nint n = Libc.readlink(p, buffer, 256);
        return n <= 0 ? null : Encoding.ASCII.GetString(buffer, (int)n);
    }

    /// <summary>Reads a whole small file (a /proc entry) into <paramref name="buffer"/>; returns the length, or -1.</summary>
    public static int ReadFile(string path, ref byte[] buffer, int maxBytes = 1 << 20)
    {
        byte* p = stackalloc byte[512];
        if (!Utf8Z(path, p, 512))
            return -1;
        return ReadFile(p, ref buffer, maxBytes);
    }

    /// <summary>Reads a whole small file given a NUL-terminated path; returns the length, or -1.</summary>
    public static int ReadFile(byte* path, ref byte[] buffer, int maxBytes = 1 << 20)
    {
        int fd = Libc.open(path, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        try
        {
            int total = 0;
            while (true)
            {
                if (total == buffer.Length)
                {
                    if (buffer.Length >= maxBytes)
                        return total;
                    Array.Resize(ref buffer, Math.Min(buffer.Length * 2, maxBytes));
                }

                nint n;
                fixed (byte* b = &buffer[total])
                    n = Libc.read(fd, b, buffer.Length - total);
                if (n < 0)
                {
                    if (Libc.LastError == Libc.EINTR)
                        continue;
                    return total > 0 ? total : -1;
                }

                if (n == 0)
                    return total;
                total += (int)n;
            }
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>Writes <paramref name="text"/> to an existing file (a cgroup control file); returns errno or 0.</summary>
    public static int WriteFile(string path, string text)
    {
        byte* p = stackalloc byte[1024];
        if (!Utf8Z(path, p, 1024))
            return Libc.EINVAL;
        int fd = Libc.open(p, Libc.O_WRONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0)
            return Libc.LastError;
        try
        {
            byte[] bytes = Encoding.ASCII.GetBytes(text);
            fixed (byte* b = bytes)
                return Libc.write(fd, b, bytes.Length) < 0 ? Libc.LastError : 0;
        }
        finally
        {
            Libc.close(fd);
        }
    }

    public static int OpenRead(string path)
    {
        byte* p = stackalloc byte[1024];
        if (!Utf8Z(path, p, 1024))
            return -1;
        return Libc.open(p, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
    }

    /// <summary>An O_DIRECTORY descriptor (e.g. a cgroup for CLONE_INTO_CGROUP); -1 on failure.</summary>
    public static int OpenDirectory(string path)
    {
        byte* p = stackalloc byte[1024];
        if (!Utf8Z(path, p, 1024))
            return -1;
        return Libc.open(p, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
    }

    private static bool Utf8Z(string s, byte* destination, int capacity)
    {
        int max = Encoding.UTF8.GetMaxByteCount(s.Length);
        if (max >= capacity && Encoding.UTF8.GetByteCount(s) >= capacity)
            return false;
        int n = Encoding.UTF8.GetBytes(s, new Span<byte>(destination, capacity - 1));
        destination[n] = 0;
        return true;
    }
}
