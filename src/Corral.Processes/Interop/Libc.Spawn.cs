using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>posix_spawn and its attribute / file-action helpers.</summary>
internal static unsafe partial class Libc
{
    internal const short POSIX_SPAWN_SETSIGDEF = 0x04;
    internal const short POSIX_SPAWN_SETSIGMASK = 0x08;
    internal const short POSIX_SPAWN_SETSID = 0x80;

    // glibc's opaque types are smaller than this; over-allocating keeps us independent of the exact layout.
    internal const int OpaqueSpawnStructSize = 1024;
    internal const int SigSetSize = 128;

    [LibraryImport(Name)]
    internal static partial int posix_spawn(out int pid, byte* path, void* fileActions, void* attr, byte** argv, byte** envp);

    [LibraryImport(Name)]
    internal static partial int posix_spawnattr_init(void* attr);

    [LibraryImport(Name)]
    internal static partial int posix_spawnattr_destroy(void* attr);

    [LibraryImport(Name)]
    internal static partial int posix_spawnattr_setflags(void* attr, short flags);

    [LibraryImport(Name)]
    internal static partial int posix_spawnattr_setsigdefault(void* attr, void* sigset);

    [LibraryImport(Name)]
    internal static partial int posix_spawnattr_setsigmask(void* attr, void* sigset);

    [LibraryImport(Name)]
    internal static partial int posix_spawn_file_actions_init(void* actions);

    [LibraryImport(Name)]
    internal static partial int posix_spawn_file_actions_destroy(void* actions);

    [LibraryImport(Name)]
    internal static partial int posix_spawn_file_actions_adddup2(void* actions, int fd, int newFd);

    [LibraryImport(Name)]
    internal static partial int posix_spawn_file_actions_addopen(void* actions, int fd, byte* path, int oflag, int mode);

    [LibraryImport(Name)]
    internal static partial int posix_spawn_file_actions_addchdir_np(void* actions, byte* path);

    [LibraryImport(Name)]
    internal static partial int posix_spawn_file_actions_addclose(void* actions, int fd);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int mkfifo(byte* path, int mode);

    /// <summary>The calling thread's kernel id (glibc 2.30+).</summary>
    [LibraryImport(Name)]
    internal static partial int gettid();

    [LibraryImport(Name)]
    internal static partial int sigemptyset(void* set);

    [LibraryImport(Name)]
    internal static partial int sigaddset(void* set, int signal);

    /// <summary>glibc 2.34+; resolved at run time so older hosts still work.</summary>
    internal static readonly delegate* unmanaged<void*, int, int> posix_spawn_file_actions_addclosefrom_np =
        (delegate* unmanaged<void*, int, int>)TryGetExport("posix_spawn_file_actions_addclosefrom_np");

    private static void* TryGetExport(string name) =>
        NativeLibrary.TryLoad("libc.so.6", out var lib) && NativeLibrary.TryGetExport(lib, name, out var address)
            ? (void*)address
            : null;
}
