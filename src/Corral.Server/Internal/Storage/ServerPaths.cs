namespace Corral.Server.Internal.Storage;

/// <summary>Where the server keeps its files, under the data directory.</summary>
internal sealed record ServerPaths(string DataDirectory, string WorkspaceRoot)
{
    public string Database => Path.Combine(DataDirectory, "corral.db");

    public string Tasks => Path.Combine(DataDirectory, "tasks");

    public string TaskDirectory(string id) => Path.Combine(Tasks, id);

    /// <summary>Space given back when the disk fills up (see <see cref="StorageGuard"/>).</summary>
    public string Reserve => Path.Combine(DataDirectory, ".reserve");
}
