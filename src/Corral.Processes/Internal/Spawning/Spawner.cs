using System.Runtime.InteropServices;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Spawning;

/// <summary>The spawned child: its PID, and its pidfd when the spawn made one (otherwise -1).</summary>
internal readonly record struct SpawnedChild(int Pid, int Pidfd);

/// <summary>
/// Spawns a session leader with default signal dispositions, an empty signal mask and only fds 0-2. When a cgroup
/// leaf is given, the child is in it before the target program starts, so not even the target's first fork can
/// escape. With Corral's native spawn (<see cref="CorralSpawn"/>) the kernel creates the child in the leaf
/// (CLONE_INTO_CGROUP). Without it, posix_spawn, and the child is moved into the leaf before it execs: through the
/// <see cref="CgroupJoinGate"/> when the host allows it, otherwise through a /bin/sh exec shim.
/// </summary>
internal static unsafe class Spawner
{
    private static readonly AsyncLocal<bool?> s_preferNative = new();

    /// <summary>
    /// Use the native spawn when it is available; tests turn it off to exercise the posix_spawn path (for their own
    /// async flow only, so tests running meanwhile keep the native spawn).
    /// </summary>
    internal static bool PreferNative
    {
        get => s_preferNative.Value ?? true;
        set => s_preferNative.Value = value;
    }

    /// <summary>Spawns the child; fds are the child's ends for 0, 1 and 2.</summary>
    public static SpawnedChild Spawn(SpawnRequest request, int stdinFd, int stdoutFd, int stderrFd, CgroupLeaf? leaf)
    {
        // The child moves its three ends onto 0, 1 and 2 in that order, so an end that is itself 0, 1 or 2 (a host
        // started with one of those closed gets its next descriptors there) could be overwritten by an earlier move:
        // stdout's pipe at 0 would become stdin. Such ends are given to the child as copies above 2.
        int liftedIn = -1, liftedOut = -1, liftedErr = -1;
        try
        {
            return SpawnFrom(request, Lift(stdinFd, ref liftedIn), Lift(stdoutFd, ref liftedOut), Lift(stderrFd, ref liftedErr), leaf);
        }
        finally
        {
            Fd.Close(ref liftedIn);
            Fd.Close(ref liftedOut);
            Fd.Close(ref liftedErr);
        }
    }

    private static int Lift(int fd, ref int copy)
    {
        if (fd > 2)
            return fd;
        copy = Libc.fcntl(fd, Libc.F_DUPFD_CLOEXEC, 3);
        if (copy < 0)
            throw new ProcessSpawnException(SpawnFailure.SystemError, "fcntl(F_DUPFD_CLOEXEC)", Libc.Describe(Libc.LastError), Libc.LastError);
        return copy;
    }

    private static SpawnedChild SpawnFrom(SpawnRequest request, int stdinFd, int stdoutFd, int stderrFd, CgroupLeaf? leaf)
    {
        if (PreferNative && CorralSpawn.Available)
            return SpawnNative(request, stdinFd, stdoutFd, stderrFd, leaf);
        if (request.NeedsMountNamespace || request.PrivateIpc)
        {
            throw new ProcessSpawnException(SpawnFailure.ContainmentUnavailable, request.ExecutablePath,
                $"private directories, a /proc of the tree's own and a private IPC namespace need Corral's native spawn ({CorralSpawn.FileName}), which is not available");
        }

        if (request.User is { } user)
        {
            // posix_spawn has no action that changes identity or sets no_new_privs, and nothing of ours can run
            // between its fork and exec: rather than run the tree as Corral's own user, refuse.
            throw new ProcessSpawnException(SpawnFailure.UserUnavailable, request.ExecutablePath,
                $"running as uid {user.Uid} needs Corral's native spawn ({CorralSpawn.FileName}, built with a C compiler on x86-64), " +
                "which is not available; the posix_spawn fallback cannot change a child's identity before exec");
        }

        return new SpawnedChild(SpawnPosix(request, stdinFd, stdoutFd, stderrFd, leaf?.ProcsPath), -1);
    }

    private static SpawnedChild SpawnNative(SpawnRequest request, int stdinFd, int stdoutFd, int stderrFd, CgroupLeaf? leaf)
    {
        // A tree that cannot change its mounts joins a namespace made for trees like it rather than make its own. Where
        // joining is refused (setns also needs CAP_SYS_CHROOT), trees make their own again, as before sharing.
        bool share = request.NeedsMountNamespace && request.User is { Uid: not 0 } && !MountNamespaces.Refused;
        if (SpawnNative(request, stdinFd, stdoutFd, stderrFd, leaf, share) is { } child)
            return child;
        MountNamespaces.Refuse();
        return SpawnNative(request, stdinFd, stdoutFd, stderrFd, leaf, share: false)!.Value;
    }

    /// <summary>The child, or <c>null</c> when it could not join the shared namespace (it never ran, and was reaped).</summary>
    private static SpawnedChild? SpawnNative(SpawnRequest request, int stdinFd, int stdoutFd, int stderrFd, CgroupLeaf? leaf, bool share)
    {
        int cgroupFd = -1;
        var strings = new NativeStrings();
        var shared = share ? MountNamespaces.Rent(request.Mounts, request.OwnProcessesOnly) : null;
        try
        {
            if (leaf is not null)
            {
                cgroupFd = Fd.OpenDirectory(leaf.Path);
                if (cgroupFd < 0)
                    throw new ProcessSpawnException(SpawnFailure.ContainmentUnavailable, leaf.Path, "cannot open the cgroup: " + Libc.Describe(Libc.LastError), Libc.LastError);
            }

            var r = new CorralSpawn.Request
            {
                Path = strings.Add(request.ExecutablePath),
                Argv = strings.AddArray(request.Argv),
                Envp = strings.AddArray(request.Environment),
                WorkingDirectory = request.WorkingDirectory is { } cwd ? strings.Add(cwd) : null,
                StdinFd = stdinFd,
                StdoutFd = stdoutFd,
                StderrFd = stderrFd,
                CgroupFd = cgroupFd,
                MountCount = shared is null ? request.Mounts.Count : 0,
                MountSources = shared is null && request.Mounts.Count > 0 ? strings.AddArray([.. request.Mounts.Select(m => m.Source)]) : null,
                MountTargets = shared is null && request.Mounts.Count > 0 ? strings.AddArray([.. request.Mounts.Select(m => m.Target)]) : null,
                MountNamespaceFd = shared is null ? -1 : (int)shared.DangerousGetHandle(),
                NewIpc = request.PrivateIpc ? 1 : 0,
                OwnProcesses = shared is null && request.OwnProcessesOnly ? 1 : 0,
            };
            var user = request.User;
            uint[] groups = user?.SupplementaryGroups.Select(g => (uint)g).ToArray() ?? [];
            int pid, pidfd, step;
            fixed (uint* g = groups)
            {
                if (user is not null)
                {
                    r.SetUser = 1;
                    r.Uid = (uint)user.Uid;
                    r.Gid = (uint)user.Gid;
                    r.GroupCount = groups.Length;
                    r.Groups = g;
                    r.ClearKeyrings = user.Exclusive ? 1 : 0;
                }

                pid = CorralSpawn.Spawn(&r, out pidfd, out step);
            }

            if (pid > 0)
                return new SpawnedChild(pid, pidfd);

            int error = -pid;
            if (step == CorralSpawn.StepSetns && error == Libc.EPERM)
                return null;
            string asUser = user is null ? "" : $" as uid {user.Uid}";
            var (failure, what) = step switch
            {
                CorralSpawn.StepExec => (ExecFailure(error), "exec failed" + asUser),
                CorralSpawn.StepChdir => (SpawnFailure.BadWorkingDirectory, "cannot enter the working directory" + asUser),
                CorralSpawn.StepSetgroups => (SpawnFailure.UserUnavailable, $"cannot set the supplementary groups of uid {user?.Uid}"),
                CorralSpawn.StepSetgid => (SpawnFailure.UserUnavailable, $"cannot change to gid {user?.Gid}"),
                CorralSpawn.StepSetuid => (SpawnFailure.UserUnavailable, $"cannot change to uid {user?.Uid}"),
                CorralSpawn.StepNoNewPrivs => (SpawnFailure.UserUnavailable, "cannot set no_new_privs"),
                CorralSpawn.StepUnshare => (SpawnFailure.ContainmentUnavailable, "cannot make the tree a mount namespace of its own (private directories need CAP_SYS_ADMIN)"),
                CorralSpawn.StepMount => (SpawnFailure.ContainmentUnavailable, "cannot mount the tree's private directories"),
                CorralSpawn.StepSetns => (SpawnFailure.ContainmentUnavailable, "cannot join the mount namespace of the tree's private directories"),
                CorralSpawn.StepKeyring => (SpawnFailure.UserUnavailable, $"cannot give the tree{asUser} keyrings of its own"),
                CorralSpawn.StepProc => (SpawnFailure.ContainmentUnavailable, "cannot mount a /proc that shows only the tree's own processes (it needs CAP_SYS_ADMIN and Linux 5.8)"),
                CorralSpawn.StepIpc => (SpawnFailure.ContainmentUnavailable, "cannot give the tree an IPC namespace of its own (it needs CAP_SYS_ADMIN)"),
                0 when leaf is not null => (SpawnFailure.ContainmentUnavailable, "clone3 into the cgroup failed"),
                _ => (SpawnFailure.SystemError, "spawn failed"),
            };
            string path = failure switch
            {
                SpawnFailure.ContainmentUnavailable => leaf?.Path ?? request.ExecutablePath,
                SpawnFailure.BadWorkingDirectory => request.WorkingDirectory ?? request.ExecutablePath,
                _ => request.ExecutablePath,
            };
            throw new ProcessSpawnException(failure, path, what + ": " + Libc.Describe(error), error);
        }
        finally
        {
            shared?.DangerousRelease();
            Fd.Close(ref cgroupFd);
            strings.Dispose();
        }
    }

    public const string ShellPath = "/bin/sh";

    // "$0" is the leaf's cgroup.procs: writing 0 moves the writer itself, then exec keeps the PID.
    private const string JoinCgroupShim = "echo 0 >\"$0\" || exit 125; exec \"$@\"";

    // The shell exports PWD even when it was not given one; take it out again so the environment stays exact.
    private const string JoinCgroupShimWithoutPwd = "echo 0 >\"$0\" || exit 125; unset PWD; exec \"$@\"";

    private static int SpawnPosix(SpawnRequest request, int stdinFd, int stdoutFd, int stderrFd, string? cgroupProcsPath)
    {
        string path = request.ExecutablePath;
        IReadOnlyList<string> argv = request.Argv;
        var gate = cgroupProcsPath is not null ? CgroupJoinGate.Instance : null;
        if (cgroupProcsPath is not null && gate is null)
        {
            path = ShellPath;
            bool hasPwd = request.Environment.Any(e => e.StartsWith("PWD=", StringComparison.Ordinal));
            argv = [ShellPath, "-c", hasPwd ? JoinCgroupShim : JoinCgroupShimWithoutPwd, cgroupProcsPath, .. request.Argv];
        }

        var strings = new NativeStrings();
        void* actions = NativeMemory.AllocZeroed(Libc.OpaqueSpawnStructSize);
        void* attr = NativeMemory.AllocZeroed(Libc.OpaqueSpawnStructSize);
        void* sigDefault = NativeMemory.AllocZeroed(Libc.SigSetSize);
        void* sigMask = NativeMemory.AllocZeroed(Libc.SigSetSize);
        try
        {
            Check(Libc.posix_spawn_file_actions_init(actions), "posix_spawn_file_actions_init", path);
            Check(Libc.posix_spawnattr_init(attr), "posix_spawnattr_init", path);
            try
            {
                if (gate is not null)
                {
                    // First actions: announce ourselves, then block until the helper has put this child in its leaf.
                    int gateFd = GateFd(gate, stdinFd, stdoutFd, stderrFd);
                    Check(Libc.posix_spawn_file_actions_addopen(actions, gateFd, gate.ArrivePath, Libc.O_WRONLY, 0), "addopen(gate)", path);
                    Check(Libc.posix_spawn_file_actions_addopen(actions, gateFd + 1, gate.ReleasePath, Libc.O_RDONLY, 0), "addopen(gate)", path);
                    Check(Libc.posix_spawn_file_actions_addclose(actions, gateFd), "addclose(gate)", path);
                    Check(Libc.posix_spawn_file_actions_addclose(actions, gateFd + 1), "addclose(gate)", path);
                }

                Check(Libc.posix_spawn_file_actions_adddup2(actions, stdinFd, 0), "adddup2(stdin)", path);
                Check(Libc.posix_spawn_file_actions_adddup2(actions, stdoutFd, 1), "adddup2(stdout)", path);
                Check(Libc.posix_spawn_file_actions_adddup2(actions, stderrFd, 2), "adddup2(stderr)", path);
                if (Libc.posix_spawn_file_actions_addclosefrom_np != null)
                    Check(Libc.posix_spawn_file_actions_addclosefrom_np(actions, 3), "addclosefrom_np", path);
                if (request.WorkingDirectory is not null)
                    Check(Libc.posix_spawn_file_actions_addchdir_np(actions, strings.Add(request.WorkingDirectory)), "addchdir_np", path);

                // .NET ignores SIGPIPE and may have handlers or a mask; the child must start from defaults.
                Libc.sigemptyset(sigDefault);
                for (int sig = 1; sig < 65; sig++)
                {
                    // glibc refuses its internal signals (32, 33) here and leaves them ignored in every spawned child.
                    if (sig is not (Libc.SIGKILL or Libc.SIGSTOP))
                        Libc.sigaddset(sigDefault, sig);
                }

                Libc.sigemptyset(sigMask);
                Check(Libc.posix_spawnattr_setsigdefault(attr, sigDefault), "setsigdefault", path);
                Check(Libc.posix_spawnattr_setsigmask(attr, sigMask), "setsigmask", path);
                Check(Libc.posix_spawnattr_setflags(attr, Libc.POSIX_SPAWN_SETSID | Libc.POSIX_SPAWN_SETSIGDEF | Libc.POSIX_SPAWN_SETSIGMASK), "setflags", path);

                byte** nativeArgv = strings.AddArray(argv);
                byte** nativeEnv = strings.AddArray(request.Environment);
                byte* nativePath = strings.Add(path);
                int error, pid, joinError = 0;
                if (gate is null)
                {
                    error = Libc.posix_spawn(out pid, nativePath, actions, attr, nativeArgv, nativeEnv);
                }
                else
                {
                    gate.Begin(cgroupProcsPath!, GateFd(gate, stdinFd, stdoutFd, stderrFd));
                    try
                    {
                        error = Libc.posix_spawn(out pid, nativePath, actions, attr, nativeArgv, nativeEnv);
                    }
                    finally
                    {
                        joinError = gate.End();
                    }
                }

                if (error == 0 && joinError != 0)
                {
                    // The child could not be put in its leaf: it was killed before exec (or, after an internal
                    // failure, is killed now). Reap it and report; nothing of the program is left running.
                    int pidfd = Libc.pidfd_open(pid);
                    if (pidfd >= 0)
                    {
                        Libc.pidfd_send_signal(pidfd, Libc.SIGKILL);
                        Libc.close(pidfd);
                    }

                    byte* info = stackalloc byte[Libc.SigInfoSize];
                    while (Libc.waitid(Libc.P_PID, pid, info, Libc.WEXITED) != 0 && Libc.LastError == Libc.EINTR)
                    {
                    }

                    throw new ProcessSpawnException(SpawnFailure.ContainmentUnavailable, cgroupProcsPath!,
                        "cannot move the child into its cgroup: " + Libc.Describe(joinError), joinError);
                }

                if (error != 0)
                {
                    throw new ProcessSpawnException(ExecFailure(error), request.ExecutablePath, "posix_spawn failed: " + Libc.Describe(error), error);
                }

                return pid;
            }
            finally
            {
                Libc.posix_spawn_file_actions_destroy(actions);
                Libc.posix_spawnattr_destroy(attr);
            }
        }
        finally
        {
            NativeMemory.Free(actions);
            NativeMemory.Free(attr);
            NativeMemory.Free(sigDefault);
            NativeMemory.Free(sigMask);
            strings.Dispose();
        }
    }

    /// <summary>What an exec error means to the caller, on either spawn path.</summary>
    private static SpawnFailure ExecFailure(int errno) => errno switch
    {
        Libc.ENOENT => SpawnFailure.FileNotFound,
        Libc.EACCES or Libc.ENOEXEC => SpawnFailure.NotExecutable,
        _ => SpawnFailure.SystemError,
    };

    /// <summary>A descriptor number for the child's gate FIFOs (it uses this one and the next) that collides with nothing its file actions still need.</summary>
    private static int GateFd(CgroupJoinGate gate, int stdinFd, int stdoutFd, int stderrFd) =>
        Math.Max(gate.LowestGateFd, Math.Max(stdinFd, Math.Max(stdoutFd, stderrFd)) + 1);

    private static void Check(int error, string what, string path)
    {
        if (error != 0)
            throw new ProcessSpawnException(SpawnFailure.SystemError, path, $"{what} failed: {Libc.Describe(error)}", error);
    }
}
