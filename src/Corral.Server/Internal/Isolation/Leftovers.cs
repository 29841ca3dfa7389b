using Corral.Processes;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// What a task's uid left in the host's shared writable directories (<c>/tmp</c>, <c>/var/tmp</c>, <c>/dev/shm</c>),
/// found and removed before the uid is handed out again, so a later task of that uid cannot read it.
/// <para>
/// Removal runs <c>rm</c> as the uid itself, with no supplementary group: it can remove only what that uid could, so a
/// link or a swapped directory planted by another task gains nobody anything (root never deletes by a path there).
/// </para>
/// </summary>
internal static class Leftovers
{
    private const int TypeMask = 0xF000, Directory = 0x4000, OtherWrite = 0x2;

    /// <summary>Paths per uid: the entries of <paramref name="directories"/> owned by a uid <paramref name="wanted"/>, and those one level down in a world-writable directory of someone else (<c>/tmp/.X11-unix</c>).</summary>
    public static Dictionary<int, List<string>> Find(IEnumerable<string> directories, Func<int, bool> wanted)
    {
        var found = new Dictionary<int, List<string>>();
        foreach (string directory in directories)
        {
            foreach (string entry in Entries(directory))
            {
                if (!Interop.Libc.TryOwner(entry, out int uid, out int mode))
                    continue;
                if (wanted(uid))
                {
                    Add(found, uid, entry);
                }
                else if ((mode & TypeMask) == Directory && (mode & OtherWrite) != 0)
                {
                    foreach (string inner in Entries(entry))
                    {
                        if (Interop.Libc.TryOwner(inner, out int innerUid, out _) && wanted(innerUid))
                            Add(found, innerUid, inner);
                    }
                }
            }
        }

        return found;
    }

    /// <summary>Removes <paramref name="paths"/> as <paramref name="uid"/>; <c>true</c> when none of them is left.</summary>
    public static async Task<bool> RemoveAsync(int uid, IReadOnlyList<string> paths, CancellationToken cancellationToken)
    {
        foreach (var batch in paths.Chunk(512)) // well within ARG_MAX
        {
            var spec = new ProcessSpec("/bin/rm", ["-rf", "--one-file-system", "--", .. batch])
            {
                User = new ProcessUser(uid, uid),
                WorkingDirectory = "/",
                InheritEnvironment = false,
                Timeout = TimeSpan.FromSeconds(60),
            };
            try
            {
                await ProcessTree.RunAsync(spec, cancellationToken).ConfigureAwait(false);
            }
            catch (ProcessSpawnException)
            {
                return false;
            }
        }

        return paths.All(p => !(Interop.Libc.TryOwner(p, out int owner, out _) && owner == uid));
    }

    private static void Add(Dictionary<int, List<string>> found, int uid, string path)
    {
        if (!found.TryGetValue(uid, out var list))
            found[uid] = list = [];
        list.Add(path);
    }

    private static IEnumerable<string> Entries(string directory)
    {
        try
        {
            // Materialized so an error while reading is caught here, not in the caller's loop.
            return System.IO.Directory.EnumerateFileSystemEntries(directory).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
