using System.Collections;
using System.Runtime.InteropServices;

namespace Corral.Benchmarks.Harness;

/// <summary>
/// The raw baseline: posix_spawn, then one poll(2) loop over the two pipes and a pidfd on the calling thread,
/// completing on the direct child's exit after reading the pipes until EAGAIN. No containment, no teardown, no
/// async machinery: the floor that any .NET library pays for the same work.
/// </summary>
internal static unsafe class RawProcess
{
    public readonly record struct Result(int ExitStatus, long StdoutBytes, long StderrBytes);

    public static string[] Environment(string tag, IEnumerable<KeyValuePair<string, string>>? extra = null)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in System.Environment.GetEnvironmentVariables())
            env[(string)e.Key] = (string?)e.Value ?? "";
        env[Leftovers.TagVariable] = tag;
        if (extra is not null)
        {
            foreach (var (k, v) in extra)
                env[k] = v;
        }

        return env.Select(kv => kv.Key + "=" + kv.Value).ToArray();
    }

    /// <summary>posix_spawn with the given descriptors as 0, 1, 2 (default signal dispositions, empty mask).</summary>
    public static int Spawn(string path, IReadOnlyList<string> argv, IReadOnlyList<string> env, int stdin, int stdout, int stderr, bool setsid = false)
    {
        using var strings = new Corral.Processes.Internal.Spawning.NativeStrings();
        void* actions = NativeMemory.AllocZeroed(1024);
        void* attr = NativeMemory.AllocZeroed(1024);
        void* sigDefault = NativeMemory.AllocZeroed(128);
        void* sigMask = NativeMemory.AllocZeroed(128);
        try
        {
            Native.posix_spawn_file_actions_init(actions);
            Native.posix_spawnattr_init(attr);
            Native.posix_spawn_file_actions_adddup2(actions, stdin, 0);
            Native.posix_spawn_file_actions_adddup2(actions, stdout, 1);
            Native.posix_spawn_file_actions_adddup2(actions, stderr, 2);
            Native.sigemptyset(sigDefault);
            for (int sig = 1; sig < 65; sig++)
            {
                if (sig is not (9 or 19))
                    Native.sigaddset(sigDefault, sig);
            }

            Native.sigemptyset(sigMask);
            Native.posix_spawnattr_setsigdefault(attr, sigDefault);
            Native.posix_spawnattr_setsigmask(attr, sigMask);
            short flags = (short)(Native.POSIX_SPAWN_SETSIGDEF | Native.POSIX_SPAWN_SETSIGMASK | (setsid ? Native.POSIX_SPAWN_SETSID : 0));
            Native.posix_spawnattr_setflags(attr, flags);
            int rc = Native.posix_spawn(out int pid, strings.Add(path), actions, attr, strings.AddArray(argv), strings.AddArray(env));
            Native.posix_spawn_file_actions_destroy(actions);
            Native.posix_spawnattr_destroy(attr);
            if (rc != 0)
                throw new IOException($"posix_spawn({path}) failed: errno {rc}");
            return pid;
        }
        finally
        {
            NativeMemory.Free(actions);
            NativeMemory.Free(attr);
            NativeMemory.Free(sigDefault);
            NativeMemory.Free(sigMask);
        }
    }

    /// <summary>Runs a command with both output pipes read until the child exits, then until EAGAIN. Blocks the calling thread.</summary>
    public static Result Run(string path, IReadOnlyList<string> argv, IReadOnlyList<string> env)
    {
        int devNull = Native.OpenPath("/dev/null", Native.O_RDONLY);
        var (outR, outW) = Native.Pipe();
        var (errR, errW) = Native.Pipe();
        int pid;
        try
        {
            pid = Spawn(path, argv, env, devNull, outW, errW);
        }
        finally
        {
            Native.close(devNull);
            Native.close(outW);
            Native.close(errW);
        }

        int pidfd = Native.pidfd_open(pid);
        Native.SetNonBlocking(outR);
        Native.SetNonBlocking(errR);
        byte* buffer = stackalloc byte[64 * 1024];
        long outBytes = 0, errBytes = 0;
        bool outOpen = true, errOpen = true, exited = false;
        var fds = stackalloc Native.PollFd[3];
        try
        {
            while (!exited)
            {
                int n = 0;
                if (outOpen) fds[n++] = new Native.PollFd { Fd = outR, Events = Native.POLLIN };
                if (errOpen) fds[n++] = new Native.PollFd { Fd = errR, Events = Native.POLLIN };
                fds[n++] = new Native.PollFd { Fd = pidfd, Events = Native.POLLIN };
                if (Native.poll(fds, (nuint)n, -1) < 0 && Native.LastError == Native.EINTR)
                    continue;
                for (int i = 0; i < n; i++)
                {
                    if (fds[i].Revents == 0)
                        continue;
                    if (fds[i].Fd == pidfd)
                        exited = true;
                    else if (fds[i].Fd == outR)
                        outOpen = Drain(outR, buffer, ref outBytes);
                    else
                        errOpen = Drain(errR, buffer, ref errBytes);
                }
            }

            // Exited: everything it wrote is in the pipes. Take it without waiting for EOF.
            if (outOpen) Drain(outR, buffer, ref outBytes);
            if (errOpen) Drain(errR, buffer, ref errBytes);

            byte* info = stackalloc byte[128];
            new Span<byte>(info, 128).Clear();
            while (Native.waitid(Native.P_PIDFD, pidfd, info, Native.WEXITED) != 0 && Native.LastError == Native.EINTR)
            {
            }

            return new Result(*(int*)(info + 24), outBytes, errBytes);
        }
        finally
        {
            Native.close(pidfd);
            Native.close(outR);
            Native.close(errR);
        }
    }

    /// <summary>Reads until EAGAIN (true: still open) or EOF (false).</summary>
    private static bool Drain(int fd, byte* buffer, ref long count)
    {
        while (true)
        {
            nint n = Native.read(fd, buffer, 64 * 1024);
            if (n > 0)
            {
                count += n;
                continue;
            }

            if (n == 0)
                return false;
            int errno = Native.LastError;
            if (errno == Native.EINTR)
                continue;
            return errno == Native.EAGAIN;
        }
    }

    /// <summary>Reaps a child of ours, blocking.</summary>
    public static void Reap(int pid)
    {
        byte* info = stackalloc byte[128];
        while (Native.waitid(Native.P_PID, pid, info, Native.WEXITED) != 0 && Native.LastError == Native.EINTR)
        {
        }
    }

    /// <summary>
    /// Native pipe throughput: <paramref name="writer"/> → pipe (default or resized) → <paramref name="reader"/>,
    /// both real programs; returns when both have exited.
    /// </summary>
    public static void Pipeline(string[] writer, string[] reader, IReadOnlyList<string> env, int pipeSize = 0)
    {
        int devNull = Native.OpenPath("/dev/null", Native.O_RDONLY);
        int devNullW = Native.OpenPath("/dev/null", Native.O_WRONLY);
        var (r, w) = Native.Pipe();
        if (pipeSize > 0 && Native.fcntl(w, Native.F_SETPIPE_SZ, pipeSize) < 0)
            throw new IOException($"F_SETPIPE_SZ {pipeSize} failed: errno {Native.LastError}");
        int a, b;
        try
        {
            a = Spawn(writer[0], writer, env, devNull, w, devNullW);
            b = Spawn(reader[0], reader, env, r, devNullW, devNullW);
        }
        finally
        {
            Native.close(devNull);
            Native.close(devNullW);
            Native.close(r);
            Native.close(w);
        }

        Reap(a);
        Reap(b);
    }
}
