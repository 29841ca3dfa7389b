using Corral.Server.Hosting;
using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Internal.Storage;

/// <summary>
/// A data directory serves one server at a time: two would each recover, sweep and lease for the same tasks and uids.
/// Held as an exclusive <c>flock</c> on the directory itself, which the kernel drops when the server dies (a crash
/// never leaves it locked), and which no reader of the files in it ever meets (.NET locks files it opens).
/// </summary>
internal sealed class DataDirectoryLock : IDisposable
{
    private readonly SafeFileHandle _directory;

    private DataDirectoryLock(SafeFileHandle directory) => _directory = directory;

    /// <summary>Locks <paramref name="data"/> (created 0700 if missing) for this process.</summary>
    /// <exception cref="ServerConfigurationException">Another live server holds it, or it cannot be used.</exception>
    public static DataDirectoryLock Acquire(string data)
    {
        SafeFileHandle? directory = null;
        try
        {
            Files.CreatePrivateDirectory(data);
            directory = Interop.Libc.OpenDirectory(Interop.Libc.RealPath(data) ?? data); // a data directory may be a link an operator made
            if (Interop.Libc.TryLockExclusive(directory))
                return new DataDirectoryLock(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            directory?.Dispose();
            throw new ServerConfigurationException($"cannot use the data directory '{data}': {e.Message}");
        }

        directory.Dispose();
        throw new ServerConfigurationException($"the data directory '{data}' is in use by another Corral server (lslocks names it): give each server a data directory of its own (--data).");
    }

    public void Dispose() => _directory.Dispose();
}
