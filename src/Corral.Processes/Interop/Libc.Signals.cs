using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>kill(2) and the signal numbers Corral uses. Only ever aimed at a group we created or through a pidfd.</summary>
internal static partial class Libc
{
    internal const int SIGHUP = 1;
    internal const int SIGINT = 2;
    internal const int SIGKILL = 9;
    internal const int SIGTERM = 15;
    internal const int SIGCONT = 18;
    internal const int SIGSTOP = 19;

    [LibraryImport(Name, SetLastError = true)]
    internal static partial int kill(int pid, int signal);
}
