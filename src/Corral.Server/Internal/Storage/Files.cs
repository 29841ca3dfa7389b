using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Internal.Storage;

/// <summary>Files of the data directory are the server's alone: directories 0700, files 0600, whatever the umask.</summary>
internal static class Files
{
    public const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    public const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Creates <paramref name="path"/> and every missing directory above it, each 0700.</summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (Directory.Exists(path))
            return;
        if (Path.GetDirectoryName(path) is { } parent && !Directory.Exists(parent))
            CreatePrivateDirectory(parent);
        Directory.CreateDirectory(path, PrivateDirectory);
    }

    /// <summary>Narrows an existing directory (the data directory an operator made) to its owner.</summary>
    public static void MakePrivate(string directory)
    {
        if ((File.GetUnixFileMode(directory) & ~PrivateDirectory) != 0)
            File.SetUnixFileMode(directory, PrivateDirectory);
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
