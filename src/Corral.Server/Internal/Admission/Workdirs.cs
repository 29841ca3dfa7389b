namespace Corral.Server.Internal.Admission;

/// <summary>Where a task runs: its own directory by default, an existing absolute directory, or one inside the workspace root.</summary>
internal static class Workdirs
{
    /// <summary>
    /// The working directory for <paramref name="workdir"/> and whether Corral creates it (at run time, not now);
    /// <c>(null, false)</c> with an error added when it is unusable.
    /// </summary>
    public static (string? Path, bool Create) Resolve(string? workdir, string taskDirectory, string workspaceRoot, List<FieldError> errors)
    {
        if (workdir is null)
            return (Path.Combine(taskDirectory, "work"), true);
        if (workdir.Length == 0 || workdir.Contains('\0'))
        {
            errors.Add(new("workdir", "not a usable path."));
            return (null, false);
        }

        if (Path.IsPathRooted(workdir))
        {
            string full = Path.GetFullPath(workdir);
            if (Directory.Exists(full))
                return (full, false);
            errors.Add(new("workdir", File.Exists(full) ? $"'{workdir}' is a file, not a directory." : $"'{workdir}' does not exist."));
            return (null, false);
        }

        string root = Path.GetFullPath(workspaceRoot);
        string inside = Path.GetFullPath(Path.Combine(root, workdir));
        if (!inside.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            errors.Add(new("workdir", "a relative workdir must stay inside the workspace root."));
            return (null, false);
        }

        if (File.Exists(inside))
        {
            errors.Add(new("workdir", $"'{workdir}' is a file in the workspace root, not a directory."));
            return (null, false);
        }

        return (inside, true);
    }
}
