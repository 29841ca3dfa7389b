using Corral.Server.Interop;
using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>
/// Where journals live, and how they become durable: instead of an fdatasync per journal per task (the dearest CPU
/// of a short task), one <c>syncfs</c> of the data directory's file system per interval covers every journal written
/// since the last. The final record of a task is durable at its end regardless: in the database, or, when the
/// database cannot take it in time, by an fdatasync of that one journal.
/// </summary>
internal sealed class JournalVolume : IDisposable
{
    private readonly ServerPaths _paths;
    private readonly SafeFileHandle _directory;
    private long _commits;
    private long _synced;

    public JournalVolume(ServerPaths paths)
    {
        _paths = paths;
        Files.CreatePrivateDirectory(paths.Tasks);
        Files.Restrict(paths.Tasks, paths.DirectoryMode);
        // syncfs takes any descriptor on the file system; .NET opens no directories, so an empty file stands in.
        _directory = Files.OpenPrivate(Path.Combine(paths.Tasks, ".volume"), FileMode.OpenOrCreate);
    }

    public JournalWriter Create(string id) => JournalWriter.Create(_paths.TaskDirectory(id), _paths.DirectoryMode, Committed);

    public JournalWriter Open(string id) => JournalWriter.Open(_paths.TaskDirectory(id), _paths.DirectoryMode, Committed);

    /// <summary>Makes every journal written since the last call durable; nothing to do when none was.</summary>
    public void Sync()
    {
        long commits = Interlocked.Read(ref _commits);
        if (commits == Interlocked.Read(ref _synced))
            return;
        Libc.SyncFileSystem(_directory);
        Interlocked.Exchange(ref _synced, commits);
    }

    public void Dispose() => _directory.Dispose();

    private void Committed() => Interlocked.Increment(ref _commits);
}
