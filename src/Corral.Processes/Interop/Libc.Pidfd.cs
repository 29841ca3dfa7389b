using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>pidfd_open / pidfd_send_signal (through syscall(2): glibc only wraps them from 2.36) and waitid(P_PIDFD).</summary>
internal static unsafe partial class Libc
{
    // Same numbers on every architecture: both syscalls postdate the unified syscall table.
    private const long SYS_pidfd_send_signal = 424;
    private const long SYS_pidfd_open = 434;

    internal const int P_PID = 1;
    internal const int P_PIDFD = 3;
    internal const int WEXITED = 4;
    internal const int WNOHANG = 1;
    internal const int WNOWAIT = 0x01000000;

    internal const int CLD_EXITED = 1;
    internal const int CLD_KILLED = 2;
    internal const int CLD_DUMPED = 3;

    internal const int SigInfoSize = 128;

    [LibraryImport(Name, SetLastError = true)]
    private static partial long syscall(long number, long a1, long a2, long a3, long a4);

    internal static int pidfd_open(int pid) => (int)syscall(SYS_pidfd_open, pid, 0, 0, 0);

    internal static int pidfd_send_signal(int pidfd, int signal) => (int)syscall(SYS_pidfd_send_signal, pidfd, signal, 0, 0);

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int waitid(int idType, int id, byte* info, int options);

    /// <summary>The fields of siginfo_t that waitid fills for a child (same offsets on x64 and arm64).</summary>
    internal static (int Pid, int Code, int Status) ReadChildInfo(byte* info) =>
        (*(int*)(info + 16), *(int*)(info + 8), *(int*)(info + 24));
}
