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
        if (!inside.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) || !StaysInside(inside, root))
        {
            errors.Add(new("workdir", "a relative workdir must stay inside the workspace root (and not leave it through a symbolic link)."));
            return (null, false);
        }

        if (File.Exists(inside))
        {
            errors.Add(new("workdir", $"'{workdir}' is a file in the workspace root, not a directory."));
            return (null, false);
        }

        return (inside, true);
    }

    /// <summary>
    /// Whether <paramref name="path"/> (under <paramref name="root"/> as written) is still under it once every symbolic link
    /// on the way is followed: the deepest part that exists now is resolved, and the rest will be created as directories.
    /// The runner checks again after creating it, right before the task starts.
    /// </summary>
    public static bool StaysInside(string path, string root)
    {
        string? realRoot = Interop.Libc.RealPath(root) ?? root;
        for (string? existing = path; existing is not null && existing.Length >= root.Length; existing = Path.GetDirectoryName(existing))
        {
            if (!Path.Exists(existing) && !IsLink(existing))
                continue;
            if (Interop.Libc.RealPath(existing) is not { } real)
                return false; // a dangling link, or one we may not follow
            return real == realRoot || real.StartsWith(realRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal);
        }

        return true; // nothing of it exists yet, not even the root
    }

    private static bool IsLink(string path)
    {
        try
        {
            return new FileInfo(path).LinkTarget is not null;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
