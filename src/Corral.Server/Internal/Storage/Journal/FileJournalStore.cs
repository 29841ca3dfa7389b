using System.Collections.Concurrent;
using Corral.Server.Interop;
using Microsoft.Win32.SafeHandles;

namespace Corral.Server.Internal.Storage.Journal;

/// <summary>
/// Journals as files, one per task (<c>tasks/&lt;id&gt;/journal</c>). Durability: instead of an fdatasync per journal per
/// task (the dearest CPU of a short task), one <c>syncfs</c> of the data directory's file system per interval covers
/// every journal written since the last. The final record of a task is durable at its end regardless: in the database,
/// or, when the database cannot take it in time, by an fdatasync of that one journal.
/// </summary>
internal sealed class FileJournalStore : IJournalStore
{
    private readonly ServerPaths _paths;
    private readonly SafeFileHandle _volume;
    private readonly ConcurrentDictionary<string, JournalWriter> _open = new(StringComparer.Ordinal);
    private long _commits;
    private long _synced;

    public FileJournalStore(ServerPaths paths)
    {
        _paths = paths;
        Files.CreatePrivateDirectory(paths.Tasks);
        Files.Restrict(paths.Tasks, paths.DirectoryMode);
        // syncfs takes any descriptor on the file system; .NET opens no directories, so an empty file stands in.
        _volume = Files.OpenPrivate(Path.Combine(paths.Tasks, ".volume"), FileMode.OpenOrCreate);
    }

    public JournalWriter Create(string id) => Register(id, JournalWriter.Create(_paths.TaskDirectory(id), _paths.DirectoryMode, Committed));

    public JournalWriter Open(string id) => Register(id, JournalWriter.Open(_paths.TaskDirectory(id), _paths.DirectoryMode, Committed));

    public JournalReader Read(string id) => new(OpenSource(_paths.TaskDirectory(id)));

    /// <summary>A live journal is read up to what its writer committed (a read may see part of a write in progress); a finished one, to its end.</summary>
    public JournalWatch Watch(string id, JournalReader reader) =>
        _open.TryGetValue(id, out var writer) && !writer.IsClosed
            ? new JournalWatch(writer.Committed, writer.Changed, true)
            : new JournalWatch(reader.FileLength, Task.CompletedTask, false);

    public void Delete(string id)
    {
        string dir = _paths.TaskDirectory(id);
        if (Directory.Exists(dir))
            Directory.Delete(dir, recursive: true);
    }

    /// <summary>Makes every journal written since the last call durable; nothing to do when none was.</summary>
    public void Sync()
    {
        long commits = Interlocked.Read(ref _commits);
        if (commits == Interlocked.Read(ref _synced))
            return;
        Libc.SyncFileSystem(_volume);
        Interlocked.Exchange(ref _synced, commits);
    }

    public void Dispose() => _volume.Dispose();

    /// <summary>The journal file in <paramref name="directory"/> to read, or <c>null</c> when there is none.</summary>
    public static IJournalSource? OpenSource(string directory)
    {
        try
        {
            return new FileSource(File.OpenHandle(Path.Combine(directory, JournalFormat.FileName), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private JournalWriter Register(string id, JournalWriter writer)
    {
        _open[id] = writer;
        writer.Closed += () => _open.TryRemove(new KeyValuePair<string, JournalWriter>(id, writer));
        return writer;
    }

    private void Committed() => Interlocked.Increment(ref _commits);

    private sealed class FileSource(SafeFileHandle file) : IJournalSource
    {
        public long Length => RandomAccess.GetLength(file);

        public int Read(long position, Span<byte> buffer) => RandomAccess.Read(file, buffer, position);

        public void Dispose() => file.Dispose();
    }

    internal sealed class FileSink(SafeFileHandle file) : IJournalSink
    {
        public void Append(ReadOnlySpan<byte> bytes, long position) => RandomAccess.Write(file, bytes, position);

        public void Truncate(long length)
        {
            if (RandomAccess.GetLength(file) != length)
                RandomAccess.SetLength(file, length);
        }

        public void Sync() => Libc.DataSync(file);

        public void Dispose() => file.Dispose();
    }
}
