namespace Corral.Server.Internal.Storage;

/// <summary>Where the server keeps its files, under the data directory.</summary>
internal sealed record ServerPaths(string DataDirectory, string WorkspaceRoot)
{
    /// <summary>
    /// The mode of the data directory and <c>tasks/</c>, and of each task's directory: 0700, or 0711 when tasks run as
    /// uids of their own, which must pass through them (never list or read) to reach their HOME, TMPDIR and workdir.
    /// </summary>
    public UnixFileMode DirectoryMode { get; init; } = Files.PrivateDirectory;

    /// <summary>Where a resumable agent session's state waits between the tasks of that session (tasks with a uid of their own).</summary>
    public string Sessions => Path.Combine(DataDirectory, "sessions");

    public string Database => Path.Combine(DataDirectory, "corral.db");

    public string Tasks => Path.Combine(DataDirectory, "tasks");

    public string TaskDirectory(string id) => Path.Combine(Tasks, id);

    /// <summary>
    /// Where each dynamic uid keeps the directories its tasks see in place of the host's shared ones
    /// (<c>private/&lt;uid&gt;/tmp</c>…): the same ones for every task of that uid, emptied before it serves another.
    /// </summary>
    public string Private => Path.Combine(DataDirectory, "private");

    /// <summary>The directory of <paramref name="uid"/> under <see cref="Private"/>.</summary>
    public string PrivateOf(int uid) => Path.Combine(Private, uid.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Space given back when the disk fills up (see <see cref="StorageGuard"/>).</summary>
    public string Reserve => Path.Combine(DataDirectory, ".reserve");
}
