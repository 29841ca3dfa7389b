using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>Shared constants and the library name for every P/Invoke into glibc.</summary>
internal static partial class Libc
{
    internal const string Name = "libc";

    internal const int EINTR = 4;
    internal const int ESRCH = 3;
    internal const int EIO = 5;
    internal const int ENOENT = 2;
    internal const int EACCES = 13;
    internal const int EPERM = 1;
    internal const int EAGAIN = 11;
    internal const int EEXIST = 17;
    internal const int ENOTDIR = 20;
    internal const int EISDIR = 21;
    internal const int EINVAL = 22;
    internal const int EPIPE = 32;
    internal const int ENOSYS = 38;
    internal const int ECHILD = 10;
    internal const int EBUSY = 16;
    internal const int ENOEXEC = 8;

    internal static int LastError => Marshal.GetLastPInvokeError();

    internal static string Describe(int errno) => $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})";
}
