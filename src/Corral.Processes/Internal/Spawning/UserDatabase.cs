using System.Runtime.InteropServices;
using Corral.Processes.Interop;

namespace Corral.Processes.Internal.Spawning;

/// <summary>Lookups in the user database through glibc (so NSS sources such as LDAP count, not only /etc/passwd).</summary>
internal static unsafe class UserDatabase
{
    /// <summary>A passwd entry: what <see cref="ProcessUser.Parse"/> needs of it.</summary>
    internal readonly record struct Entry(string Name, int Uid, int Gid);

    public static Entry? ByName(string name) => Lookup((pwd, buffer, size, result) => Libc.getpwnam_r(name, pwd, buffer, size, result));

    public static Entry? ByUid(int uid) => Lookup((pwd, buffer, size, result) => Libc.getpwuid_r((uint)uid, pwd, buffer, size, result));

    /// <summary>The groups <paramref name="user"/> belongs to, with <paramref name="primary"/> among them (as initgroups sets them).</summary>
    public static IReadOnlyList<int> Groups(string user, int primary)
    {
        int count = 64;
        while (true)
        {
            uint[] groups = new uint[count];
            int n = count;
            int rc;
            fixed (uint* g = groups)
                rc = Libc.getgrouplist(user, (uint)primary, g, &n);
            if (rc >= 0)
                return groups.Take(n).Select(g => (int)g).Distinct().ToArray();
            if (n <= count)
                count *= 2;
            else
                count = n;
            if (count > 1 << 20)
                return [primary];
        }
    }

    private delegate int LookupCall(Libc.Passwd* pwd, byte* buffer, nint size, Libc.Passwd** result);

    private static Entry? Lookup(LookupCall call)
    {
        for (int size = 16 << 10; size <= 16 << 20; size *= 4)
        {
            byte* buffer = (byte*)NativeMemory.Alloc((nuint)size);
            try
            {
                Libc.Passwd pwd;
                Libc.Passwd* result = null;
                int rc = call(&pwd, buffer, size, &result);
                if (rc == Libc.ERANGE)
                    continue;
                if (rc != 0 || result == null || result->Uid > int.MaxValue || result->Gid > int.MaxValue)
                    return null;
                return new Entry(Marshal.PtrToStringUTF8((nint)result->Name) ?? "", (int)result->Uid, (int)result->Gid);
            }
            finally
            {
                NativeMemory.Free(buffer);
            }
        }

        return null;
    }
}
