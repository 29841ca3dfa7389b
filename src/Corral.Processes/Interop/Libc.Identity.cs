using System.Runtime.InteropServices;

namespace Corral.Processes.Interop;

/// <summary>Users and groups: our own ids, and passwd lookups through NSS (getpwnam_r, getpwuid_r, getgrouplist).</summary>
internal static unsafe partial class Libc
{
    internal const int ERANGE = 34;

    /// <summary>glibc's struct passwd on 64-bit Linux: name, passwd, uid, gid, gecos, dir, shell.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct Passwd
    {
        public byte* Name;
        public byte* Password;
        public uint Uid;
        public uint Gid;
        public byte* Gecos;
        public byte* Directory;
        public byte* Shell;
    }

    [LibraryImport(Name)]
    internal static partial uint getuid();

    [LibraryImport(Name)]
    internal static partial uint geteuid();

    /// <summary>0 with <paramref name="result"/> set when found, 0 with it null when there is no such user, or an errno.</summary>
    [LibraryImport(Name, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int getpwnam_r(string name, Passwd* pwd, byte* buffer, nint size, Passwd** result);

    [LibraryImport(Name)]
    internal static partial int getpwuid_r(uint uid, Passwd* pwd, byte* buffer, nint size, Passwd** result);

    /// <summary>The groups of <paramref name="user"/> plus <paramref name="group"/>; -1 (and the needed count) when too small.</summary>
    [LibraryImport(Name, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int getgrouplist(string user, uint group, uint* groups, int* count);
}
