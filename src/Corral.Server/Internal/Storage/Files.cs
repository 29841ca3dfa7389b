using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Internal.Storage;

/// <summary>Files of the data directory are the server's alone: directories 0700, files 0600, whatever the umask.</summary>
internal static class Files
{
    public const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>0711: others may pass through (to a task's own directory inside) but not list or read.</summary>
    public const UnixFileMode TraverseOnly = PrivateDirectory | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>2770: a shared directory of the agents group; what is made in it stays in the group.</summary>
    public const UnixFileMode SharedDirectory = PrivateDirectory | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.SetGroup;

    /// <summary>1770: its group may write in it and remove only its own entries (the sticky bit); only its owner may change it.</summary>
    public const UnixFileMode OwnTmp = (UnixFileMode)0x1F8 | UnixFileMode.StickyBit;

    /// <summary>Creates <paramref name="path"/> and every missing directory above it, each 0700.</summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (Directory.Exists(path))
            return;
        if (Path.GetDirectoryName(path) is { } parent && !Directory.Exists(parent))
            CreatePrivateDirectory(parent);
        Directory.CreateDirectory(path, PrivateDirectory);
    }

    /// <summary>Narrows an existing directory (the data directory an operator made) to <paramref name="mode"/>.</summary>
    public static void Restrict(string directory, UnixFileMode mode = PrivateDirectory)
    {
        if (File.GetUnixFileMode(directory) != mode)
            File.SetUnixFileMode(directory, mode);
    }

    /// <summary>Creates a directory (its parents must exist) owned by <paramref name="uid"/>:<paramref name="gid"/>, 0700.</summary>
    public static void CreateOwnedDirectory(string path, int uid, int gid, UnixFileMode mode = PrivateDirectory)
    {
        Directory.CreateDirectory(path, mode);
        File.SetUnixFileMode(path, mode); // past the umask, and the setgid bit
        Interop.Libc.Chown(path, uid, gid);
    }

    /// <summary>
    /// Creates <paramref name="relative"/> (and whatever is missing of it) under <paramref name="root"/>, each directory
    /// on the way owned by root and <paramref name="gid"/> with <paramref name="mode"/>, also those that exist: a task
    /// that made one first (to squat a name another task will ask for) or closed it does not keep it. Walked one name at a time from a
    /// descriptor of the one above, never following a symbolic link: a task that can write in the tree and swaps a
    /// directory for a link meanwhile makes this fail, never makes a directory outside <paramref name="root"/>.
    /// </summary>
    public static void CreateBeneath(string root, string relative, int gid, UnixFileMode mode)
    {
        var current = Interop.Libc.OpenDirectory(root);
        try
        {
            foreach (string name in relative.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                if (name == ".")
                    continue;
                if (name == "..")
                    throw new IOException($"'{relative}' is not a plain path under {root}.");
                var next = Interop.Libc.OpenOrMakeDirectory(current, name, (uint)mode, 0, gid, claim: true);
                current.Dispose();
                current = next;
            }
        }
        finally
        {
            current.Dispose();
        }
    }

    /// <summary>Gives a directory and everything in it to <paramref name="uid"/>:<paramref name="gid"/> (links themselves, never their targets).</summary>
    public static void Own(string path, int uid, int gid)
    {
        Interop.Libc.Chown(path, uid, gid);
        if (!Directory.Exists(path) || new DirectoryInfo(path).LinkTarget is not null)
            return;
        foreach (string entry in Directory.EnumerateFileSystemEntries(path, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 }))
            Interop.Libc.Chown(entry, uid, gid);
    }

    /// <summary>Copies a directory tree (links as links), for seeding a task's HOME.</summary>
    public static void CopyTree(string from, string to)
    {
        foreach (var entry in new DirectoryInfo(from).EnumerateFileSystemInfos())
        {
            string target = Path.Combine(to, entry.Name);
            if (entry.LinkTarget is { } link)
                File.CreateSymbolicLink(target, link);
            else if (entry is DirectoryInfo dir)
            {
                Directory.CreateDirectory(target, File.GetUnixFileMode(dir.FullName));
                CopyTree(dir.FullName, target);
            }
            else
                File.Copy(entry.FullName, target);
        }
    }

    public static SafeFileHandle OpenPrivate(string path, FileMode mode)
    {
        var handle = File.OpenHandle(path, mode, FileAccess.ReadWrite, FileShare.ReadWrite | FileShare.Delete);
        // New files get the umask's mode (often 0644); the directory is 0700 already, this is the second fence.
        File.SetUnixFileMode(handle, PrivateFile);
        return handle;
    }

    /// <summary>Whether an exception means the disk (or quota) is full.</summary>
    public static bool IsOutOfSpace(Exception e) =>
        e is IOException { HResult: Interop.Libc.ENOSPC or Interop.Libc.EDQUOT }
        || e is Microsoft.Data.Sqlite.SqliteException { SqliteErrorCode: 13 };
}
