using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>sysconf(3): system constants /proc values are expressed in.</summary>
internal static partial class Libc
{
    internal const int _SC_CLK_TCK = 2;

    [LibraryImport(Name)]
    internal static partial long sysconf(int name);
}
