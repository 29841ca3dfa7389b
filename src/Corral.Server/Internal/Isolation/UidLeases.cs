using System.Globalization;
using System.Text;
using Corral.Server.Internal.Storage;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// Host-wide leases on dynamic uids, shared by every Corral server on the host: a uid is leased by holding its file in
/// the lease directory open with an exclusive lock (.NET's <c>FileShare.None</c> is <c>flock</c>), which the kernel
/// drops when the holder dies. The file says who holds the uid until its tree is gone; a file left non-empty by a dead
/// holder marks a uid whose processes may still run, and nobody takes it until no process runs as it.
/// </summary>
internal sealed class UidLeases : IDisposable
{
    private readonly string _directory;
    private readonly Dictionary<int, FileStream> _held = [];

    private UidLeases(string directory) => _directory = directory;

    /// <summary>The leases in <paramref name="directory"/> (created 0700); when it cannot be used, <paramref name="problem"/> says why and leases are this server's alone.</summary>
    public static UidLeases Open(string directory, out string? problem)
    {
        problem = null;
        try
        {
            Files.CreatePrivateDirectory(directory);
            var info = new DirectoryInfo(directory);
            if ((info.UnixFileMode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
                problem = $"{directory} must be writable by its owner only";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            problem = $"{directory}: {e.Message}";
        }

        return new UidLeases(problem is null ? directory : "");
    }

    /// <summary>Whether leases are shared with the host's other servers (the directory was usable).</summary>
    public bool Shared => _directory.Length > 0;

    /// <summary>Leases <paramref name="uid"/> for a task of this server: <c>false</c> if another server holds it, or a dead holder may have left processes of it.</summary>
    public bool TryTake(int uid, string holder)
    {
        if (!Shared)
            return true;
        if (Lock(uid) is not { } file)
            return false;
        bool writing = false;
        try
        {
            if (file.Length > 0)
            {
                file.Dispose(); // its holder died while the uid was in use: wait for Reclaim
                return false;
            }

            writing = true;
            file.Write(Encoding.UTF8.GetBytes(holder + "\n"));
        }
        catch (IOException)
        {
            // Not taken: a part of the mark is undone (nothing ran as the uid), and the lock goes in every case.
            try
            {
                if (writing)
                    file.SetLength(0);
            }
            catch (IOException)
            {
            }

            file.Dispose();
            return false;
        }

        _held[uid] = file;
        return true;
    }

    /// <summary>
    /// Leases again a uid this server held back (given back marked: something of it was left) now that nothing runs
    /// as it: <c>false</c> if another server holds it, or the mark is another data directory's.
    /// </summary>
    public bool TryReclaim(int uid, string holder)
    {
        if (!Shared)
            return true;
        if (_held.ContainsKey(uid) || Lock(uid) is not { } file)
            return false;
        try
        {
            if (file.Length > 0 && !SameDataDirectory(file, holder))
            {
                file.Dispose();
                return false;
            }

            file.SetLength(0);
            file.Position = 0;
            file.Write(Encoding.UTF8.GetBytes(holder + "\n"));
        }
        catch (IOException)
        {
            file.Dispose();
            return false;
        }

        _held[uid] = file;
        return true;
    }

    /// <summary>
    /// <paramref name="uid"/>'s lease file, opened and locked, or <c>null</c> when another live server holds it.
    /// Unbuffered: a write that fails (a full disk) fails where it is made, not again when the file is closed.
    /// </summary>
    private FileStream? Lock(int uid)
    {
        try
        {
            return new FileStream(Path.Combine(_directory, uid.ToString(CultureInfo.InvariantCulture)), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Gives <paramref name="uid"/> back; <paramref name="clean"/>: nothing of it is alive, so any server may take it again.</summary>
    public void Release(int uid, bool clean)
    {
        if (!_held.Remove(uid, out var file))
            return;
        try
        {
            if (clean)
                file.SetLength(0);
        }
        catch (IOException)
        {
            // left marked: the next start reclaims it once nothing runs as it
        }
        finally
        {
            file.Dispose(); // the lock goes in every case
        }
    }

    /// <summary>
    /// Frees the uids that dead holders of this data directory left marked (<paramref name="holder"/>: the directory
    /// in it is compared) and that no process runs as any more (<paramref name="alive"/>); with <paramref name="keep"/>,
    /// takes them instead, still marked (so no other server takes them first), to be given back by <see cref="Release"/>.
    /// A uid another data directory's server left stays marked for that server's next start: its task directories
    /// are its own to close. Returns the uids taken.
    /// </summary>
    public IReadOnlyList<int> Reclaim(IReadOnlySet<int> alive, string holder, bool keep = false)
    {
        var taken = new List<int>();
        if (!Shared)
            return taken;
        foreach (string path in Directory.EnumerateFiles(_directory))
        {
            if (!int.TryParse(Path.GetFileName(path), NumberStyles.None, CultureInfo.InvariantCulture, out int uid))
                continue;
            FileStream file;
            try
            {
                file = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.None, bufferSize: 0);
            }
            catch (IOException)
            {
                continue; // held by a live server
            }

            try
            {
                if (file.Length == 0 || alive.Contains(uid) || _held.ContainsKey(uid) || !SameDataDirectory(file, holder))
                {
                    file.Dispose();
                }
                else if (keep)
                {
                    _held[uid] = file;
                    taken.Add(uid);
                }
                else
                {
                    file.SetLength(0);
                    file.Dispose();
                }
            }
            catch (IOException)
            {
                file.Dispose(); // left as it was found, for the next start
            }
        }

        return taken;
    }

    /// <summary>Whether a lease file's holder line names the data directory of <paramref name="holder"/> ("pid N data DIR").</summary>
    private static bool SameDataDirectory(FileStream file, string holder)
    {
        var buffer = new byte[Math.Min(file.Length, 4096)];
        file.Position = 0;
        file.ReadExactly(buffer);
        string line = Encoding.UTF8.GetString(buffer).TrimEnd('\n');
        static string Data(string l) => l.IndexOf(" data ", StringComparison.Ordinal) is int at and >= 0 ? l[(at + 6)..] : "";
        return Data(line) == Data(holder);
    }

    public void Dispose()
    {
        foreach (var file in _held.Values)
            file.Dispose();
        _held.Clear();
    }
}
