using Corral.Processes.Interop;
using Microsoft.Win32.SafeHandles;

namespace Corral.Processes.Internal.Spawning;

/// <summary>
/// Mount namespaces made once and joined by every tree that runs as a uid other than root with the same private
/// directories. Such a tree cannot mount or unmount (no capabilities, no_new_privs), so a namespace it shares is the
/// one it would have had. Joining copies no mount table and leaves none to tear down: the kernel's teardown at a
/// namespace's end waits for an RCU grace period, which made a private <c>/tmp</c> cost about a third of a spawn.
/// A namespace serves while every source path still names the directory it bound (its mount holds that directory, so
/// no other can have its inode number meanwhile), for at most a minute (on a host whose mounts do not propagate, a
/// later host mount reaches new namespaces only); at most <see cref="Capacity"/> are kept, the oldest dropped first.
/// Each costs one descriptor.
/// </summary>
internal static unsafe class MountNamespaces
{
    internal const int Capacity = 256;
    private static readonly long MaxAgeMs = 60_000;

    private sealed record Entry(SafeFileHandle Namespace, (ulong Dev, ulong Ino)[] Ids, long Created);

    private static readonly Dictionary<string, Entry> s_entries = new(StringComparer.Ordinal);
    private static long s_purged;

    /// <summary>Whether the host refused a tree the join (<c>setns</c> needs CAP_SYS_CHROOT too): trees then make their own.</summary>
    internal static bool Refused { get; private set; }

    /// <summary>The host refused a join: none is kept, or made, any more.</summary>
    internal static void Refuse()
    {
        lock (s_entries)
        {
            Refused = true;
            foreach (var entry in s_entries.Values)
                entry.Namespace.Dispose();
            s_entries.Clear();
        }
    }

    /// <summary>
    /// A namespace with <paramref name="mounts"/>, referenced for the caller (who calls
    /// <c>DangerousRelease</c> after the spawn); <c>null</c> when one cannot be made or a source
    /// cannot be checked: the spawn then makes the tree's own, and reports why that fails.
    /// </summary>
    public static SafeFileHandle? Rent(IReadOnlyList<(string Target, string Source)> mounts, bool ownProcesses = false)
    {
        var ids = new (ulong Dev, ulong Ino)[mounts.Count];
        for (int i = 0; i < mounts.Count; i++)
        {
            if (Identity(mounts[i].Source) is not { } id)
                return null;
            ids[i] = id;
        }

        string key = (ownProcesses ? "proc\0" : "\0") + string.Join('\0', mounts.Select(m => m.Target + "\0" + m.Source));
        long now = Environment.TickCount64;
        lock (s_entries)
        {
            if (now - s_purged > 5_000)
                Purge(now);
            if (s_entries.TryGetValue(key, out var found) && found.Ids.AsSpan().SequenceEqual(ids) && now - found.Created < MaxAgeMs)
                return Referenced(found.Namespace);
        }

        if (Make(mounts, ownProcesses, ids, now) is not { } made)
            return null;
        lock (s_entries)
        {
            if (s_entries.Remove(key, out var old))
                old.Namespace.Dispose(); // closed once the last spawn joining it lets go
            Purge(now);
            while (s_entries.Count >= Capacity)
            {
                var oldest = s_entries.MinBy(e => e.Value.Created);
                s_entries.Remove(oldest.Key);
                oldest.Value.Namespace.Dispose();
            }

            s_entries[key] = made;
            return Referenced(made.Namespace);
        }
    }

    /// <summary>
    /// Each kept namespace is a copy of the host's mount table that every host mount propagates to, and holds what it
    /// bound: none stays past its age, needed or not (checked every few seconds of spawns). Under the lock.
    /// </summary>
    private static void Purge(long now)
    {
        s_purged = now;
        foreach (var expired in s_entries.Where(e => now - e.Value.Created >= MaxAgeMs).ToList())
        {
            s_entries.Remove(expired.Key);
            expired.Value.Namespace.Dispose();
        }
    }

    private static SafeFileHandle Referenced(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return handle;
    }

    private static Entry? Make(IReadOnlyList<(string Target, string Source)> mounts, bool ownProcesses, (ulong Dev, ulong Ino)[] ids, long now)
    {
        if (MakeNamespace(mounts, out var bound, ownProcesses) is not { } made)
            return null;
        // Each mount must hold the directory its path named when the key was taken: a path swapped meanwhile, even
        // swapped back since, bound another. A held directory cannot be replaced, so the key then stays true.
        if (!bound.AsSpan().SequenceEqual(ids))
        {
            made.Dispose();
            return null;
        }

        return new Entry(made, ids, now);
    }

    /// <summary>A new namespace with <paramref name="mounts"/>, and the directory each mount holds; <c>null</c> when it cannot be made.</summary>
    internal static SafeFileHandle? MakeNamespace(IReadOnlyList<(string Target, string Source)> mounts, out (ulong Dev, ulong Ino)[] bound, bool ownProcesses = false)
    {
        var strings = new NativeStrings();
        var ids = new ulong[2 * mounts.Count];
        bound = [];
        try
        {
            fixed (ulong* boundIds = ids)
            {
                var r = new CorralSpawn.Request
                {
                    MountCount = mounts.Count,
                    MountSources = strings.AddArray([.. mounts.Select(m => m.Source)]),
                    MountTargets = strings.AddArray([.. mounts.Select(m => m.Target)]),
                    MountNamespaceFd = -1,
                    NewIpc = 0,
                    OwnProcesses = ownProcesses ? 1 : 0,
                    MountIds = boundIds,
                    StdinFd = -1,
                    StdoutFd = -1,
                    StderrFd = -1,
                    CgroupFd = -1,
                };
                if (CorralSpawn.MakeMountNamespace(&r, out _) != 0)
                    return null;
                var made = new SafeFileHandle(r.MountNamespaceFd, ownsHandle: true);
                bound = [.. Enumerable.Range(0, mounts.Count).Select(i => (ids[2 * i], ids[2 * i + 1]))];
                return made;
            }
        }
        finally
        {
            strings.Dispose();
        }
    }

    /// <summary>The device and inode of a directory, or <c>null</c>.</summary>
    internal static (ulong Dev, ulong Ino)? Identity(string path)
    {
        byte* buffer = stackalloc byte[Libc.StatxBufferSize];
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0"))
        {
            if (Libc.statx(Libc.AT_FDCWD, p, 0, Libc.STATX_INO, buffer) != 0)
                return null;
        }

        ulong dev = ((ulong)*(uint*)(buffer + Libc.StatxDevMajorOffset) << 32) | *(uint*)(buffer + Libc.StatxDevMinorOffset);
        return (dev, *(ulong*)(buffer + Libc.StatxInoOffset));
    }
}
