namespace Corral.Benchmarks.Harness;

/// <summary>
/// Directories the scenarios leave for the end of the run. Deleting many files makes creating the next ones slow
/// for minutes on ext4 without a journal (it avoids reusing an inode deleted in the last 5 minutes, so every new
/// inode scans past them: measured here, up to 0.4 ms per mkdir instead of 0.03 ms), which would bill one
/// scenario's cleanup to the next scenario's server. So nothing is deleted until every scenario has run.
/// </summary>
internal static class LaterDeletes
{
    private static readonly List<string> s_paths = [];

    /// <summary>Deletes <paramref name="path"/> (recursively) when the run ends.</summary>
    public static void Add(string path)
    {
        lock (s_paths)
            s_paths.Add(path);
    }

    /// <summary>Deletes every directory added so far.</summary>
    public static void DeleteAll()
    {
        string[] paths;
        lock (s_paths)
        {
            paths = [.. s_paths];
            s_paths.Clear();
        }

        foreach (string path in paths)
        {
            try { Directory.Delete(path, recursive: true); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        }
    }
}
