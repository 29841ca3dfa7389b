using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>
/// Corral's own spawn (Native/corral_spawn.c, built next to this assembly when a C compiler is present): clone3
/// with CLONE_INTO_CGROUP, which glibc before 2.39 does not offer, and an identity change (groups, gid, uid,
/// no_new_privs) before exec, which posix_spawn cannot do and .NET code cannot do between fork and exec.
/// </summary>
internal static unsafe class CorralSpawn
{
    internal const string FileName = "libcorral_spawn.so";

    /// <summary>What failed in a child that never exec'd.</summary>
    internal const int StepSetsid = 1;
    internal const int StepChdir = 2;
    internal const int StepDup2 = 3;
    internal const int StepExec = 4;
    internal const int StepSetgroups = 5;
    internal const int StepSetgid = 6;
    internal const int StepSetuid = 7;
    internal const int StepNoNewPrivs = 8;
    internal const int StepUnshare = 9;
    internal const int StepMount = 10;
    internal const int StepSetns = 11;
    internal const int StepIpc = 12;
    internal const int StepProc = 13;
    internal const int StepKeyring = 14;

    [StructLayout(LayoutKind.Sequential)]
    internal struct Request
    {
        public byte* Path;
        public byte** Argv;
        public byte** Envp;
        public byte* WorkingDirectory;
        public int StdinFd;
        public int StdoutFd;
        public int StderrFd;
        public int CgroupFd;
        public int ChildErrno;
        public int ChildStep;
        public int SetUser;
        public uint Uid;
        public uint Gid;
        public int GroupCount;
        public uint* Groups;
        public int MountCount;
        public byte** MountSources;
        public byte** MountTargets;
        public int MountNamespaceFd;
        public int NewIpc;
        public ulong* MountIds;
        public int OwnProcesses;
        public int ClearKeyrings;
    }

    private static readonly delegate* unmanaged<Request*, int*, int*, int> s_spawn = Load("corral_spawn");
    private static readonly delegate* unmanaged<Request*, int*, int> s_namespace = (delegate* unmanaged<Request*, int*, int>)Load("corral_mount_namespace");

    /// <summary>Whether the library was found and works on this architecture.</summary>
    internal static bool Available => s_spawn != null;

    /// <summary>The child's PID (and its pidfd), or -errno with the failing step.</summary>
    internal static int Spawn(Request* request, out int pidfd, out int step)
    {
        int fd, s;
        int result = s_spawn(request, &fd, &s);
        pidfd = fd;
        step = s;
        return result;
    }

    /// <summary>0 with a descriptor of a new mount namespace holding the request's mounts in <see cref="Request.MountNamespaceFd"/>, or -errno with the failing step.</summary>
    internal static int MakeMountNamespace(Request* request, out int step)
    {
        if (s_namespace == null)
        {
            step = 0;
            return -Libc.ENOSYS;
        }

        int s;
        int result = s_namespace(request, &s);
        step = s;
        return result;
    }

    private static delegate* unmanaged<Request*, int*, int*, int> Load(string name)
    {
        // The runtime's own probing: next to the app, or runtimes/linux-x64/native from a package's deps.json.
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || RuntimeInformation.ProcessArchitecture != Architecture.X64
            || !NativeLibrary.TryLoad(FileName, typeof(CorralSpawn).Assembly, null, out nint library)
            || !NativeLibrary.TryGetExport(library, name, out nint export))
            return null;
        return (delegate* unmanaged<Request*, int*, int*, int>)export;
    }
}
