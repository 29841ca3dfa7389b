using Corral.Processes.Interop;
using Microsoft.Win32.SafeHandles;

namespace Corral.Processes.Internal.Spawning;

/// <summary>
/// Mount namespaces made once and joined by every tree that runs as a uid other than root with the same private
/// directories. Such a tree cannot mount or unmount (no capabilities, no_new_privs), so a namespace it shares is the
/// one it would have had. Joining copies no mount table and leaves none to tear down: the kernel's teardown at a
/// namespace's end waits for an RCU grace period, which made a private <c>/tmp</c> cost about a third of a spawn.
/// A namespace serves while every source path still names the directory it bound (held open, so its inode cannot be
/// reused for another), for at most a minute (on a host whose mounts do not propagate, a later host mount reaches
/// new namespaces only); at most <see cref="Capacity"/> are kept, the oldest dropped first.
/// </summary>
internal static unsafe class MountNamespaces
{
    internal const int Capacity = 1024;
    private static readonly long MaxAgeMs = 60_000;

    private sealed class Entry(SafeFileHandle ns, SafeFileHandle[] pins, (ulong Dev, ulong Ino)[] ids, long created)
    {
        public SafeFileHandle Namespace { get; } = ns;
        public (ulong Dev, ulong Ino)[] Ids { get; } = ids;
        public long Created { get; } = created;

        public void Dispose()
        {
            Namespace.Dispose(); // closed once the last spawn joining it lets go
            foreach (var pin in pins)
                pin.Dispose();
        }
    }

    private static readonly Dictionary<string, Entry> s_entries = new(StringComparer.Ordinal);

    /// <summary>
    /// A namespace with <paramref name="mounts"/>, referenced for the caller (who calls
    /// <c>DangerousRelease</c> after the spawn); <c>null</c> when one cannot be made or a source
    /// cannot be checked: the spawn then makes the tree's own, and reports why that fails.
    /// </summary>
    public static SafeFileHandle? Rent(IReadOnlyList<(string Target, string Source)> mounts)
    {
        var ids = new (ulong Dev, ulong Ino)[mounts.Count];
        for (int i = 0; i < mounts.Count; i++)
        {
            if (Identity(Libc.AT_FDCWD, mounts[i].Source) is not { } id)
                return null;
            ids[i] = id;
        }

        string key = string.Join('\0', mounts.Select(m => m.Target + "\0" + m.Source));
        long now = Environment.TickCount64;
        lock (s_entries)
        {
            if (s_entries.TryGetValue(key, out var found) && found.Ids.AsSpan().SequenceEqual(ids) && now - found.Created < MaxAgeMs)
                return Referenced(found.Namespace);
        }

        if (Make(mounts, now) is not { } made)
            return null;
        lock (s_entries)
        {
            if (s_entries.Remove(key, out var old))
                old.Dispose();
            while (s_entries.Count >= Capacity)
            {
                var oldest = s_entries.MinBy(e => e.Value.Created);
                s_entries.Remove(oldest.Key);
                oldest.Value.Dispose();
            }

            s_entries[key] = made;
            return Referenced(made.Namespace);
        }
    }

    private static SafeFileHandle Referenced(SafeFileHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        return handle;
    }

    private static Entry? Make(IReadOnlyList<(string Target, string Source)> mounts, long now)
    {
        var pins = new List<SafeFileHandle>(mounts.Count);
        var strings = new NativeStrings();
        try
        {
            var ids = new (ulong Dev, ulong Ino)[mounts.Count];
            for (int i = 0; i < mounts.Count; i++)
            {
                int fd;
                fixed (byte* path = System.Text.Encoding.UTF8.GetBytes(mounts[i].Source + "\0"))
                    fd = Libc.open(path, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
                if (fd < 0)
                    return null;
                pins.Add(new SafeFileHandle(fd, ownsHandle: true));
                if (Identity(fd, "") is not { } id)
                    return null;
                ids[i] = id;
            }

            var r = new CorralSpawn.Request
            {
                MountCount = mounts.Count,
                // By path: a bind takes its source from the new namespace's own mounts, so it is opened there.
                MountSources = strings.AddArray([.. mounts.Select(m => m.Source)]),
                MountTargets = strings.AddArray([.. mounts.Select(m => m.Target)]),
                MountNamespaceFd = -1,
                StdinFd = -1,
                StdoutFd = -1,
                StderrFd = -1,
                CgroupFd = -1,
            };
            if (CorralSpawn.MakeMountNamespace(&r, out _) != 0)
                return null;
            var made = new SafeFileHandle(r.MountNamespaceFd, ownsHandle: true);
            // Each path named the directory held open before and after the namespace opened it: that is what it binds.
            for (int i = 0; i < mounts.Count; i++)
            {
                if (Identity(Libc.AT_FDCWD, mounts[i].Source) != ids[i])
                {
                    made.Dispose();
                    return null;
                }
            }

            var entry = new Entry(made, [.. pins], ids, now);
            pins.Clear();
            return entry;
        }
        finally
        {
            foreach (var pin in pins)
                pin.Dispose();
            strings.Dispose();
        }
    }

    /// <summary>The device and inode of a directory (an empty path: of <paramref name="dirfd"/> itself), or <c>null</c>.</summary>
    private static (ulong Dev, ulong Ino)? Identity(int dirfd, string path)
    {
        byte* buffer = stackalloc byte[Libc.StatxBufferSize];
        fixed (byte* p = System.Text.Encoding.UTF8.GetBytes(path + "\0"))
        {
            if (Libc.statx(dirfd, p, path.Length == 0 ? Libc.AT_EMPTY_PATH : 0, Libc.STATX_INO, buffer) != 0)
                return null;
        }

        ulong dev = ((ulong)*(uint*)(buffer + Libc.StatxDevMajorOffset) << 32) | *(uint*)(buffer + Libc.StatxDevMinorOffset);
        return (dev, *(ulong*)(buffer + Libc.StatxInoOffset));
    }
}
