using System.Text;
using Corral.Processes;
using Corral.Server.Interop;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// What a task's uid left in the host's shared writable directories (<c>/tmp</c>, <c>/var/tmp</c>, <c>/dev/shm</c>),
/// found and removed before the uid is handed out again, so a later task of that uid cannot read it.
/// <list type="bullet">
/// <item>Found by root through descriptors and raw names: a name that is not UTF-8 is found, and a name swapped for a
/// link meanwhile is never followed. An error other than a name that vanished or was swapped fails the scan (it is
/// retried), never reads as "nothing left".</item>
/// <item>Removed by <c>rm</c> running as the uid itself, with no group: it removes only what that uid could, so a link or
/// a swapped directory planted by another task gains nobody anything. A fresh scan then checks that nothing is left.</item>
/// </list>
/// </summary>
internal static class Leftovers
{
    /// <summary>How deep a scan goes into directories that others may write in (a task's entries are removed whole).</summary>
    public const int MaxDepth = 8;

    private const int TypeMask = 0xF000, Directory = 0x4000, GroupWrite = 0x10, OtherWrite = 0x2;

    /// <summary>What a scan found: the paths of each wanted uid, or why the scan could not be done.</summary>
    public sealed record Scan(IReadOnlyDictionary<int, List<byte[]>> Found, string? Failure);

    /// <summary>
    /// The entries of <paramref name="directories"/> owned by a uid <paramref name="wanted"/>, at any depth (to
    /// <see cref="MaxDepth"/>) in directories another uid may write in: world-writable ones, or group-writable ones of
    /// <paramref name="sharedGroup"/> (a task made <c>/tmp/cache</c> 0777, another wrote in it). Every directory is
    /// opened from its parent's descriptor without following a link, so a task that swaps one meanwhile can hide it
    /// from this scan, never redirect it.
    /// </summary>
    /// <param name="directories">Absolute paths, links resolved.</param>
    /// <param name="wanted">The uids whose entries are sought.</param>
    /// <param name="sharedGroup">The group every task is a member of.</param>
    public static Scan Find(IEnumerable<string> directories, Func<int, bool> wanted, int sharedGroup)
    {
        var found = new Dictionary<int, List<byte[]>>();
        foreach (string directory in directories)
        {
            byte[] root = Encoding.UTF8.GetBytes(directory.TrimEnd('/'));
            using var dir = Libc.RawDirectory.Open(root, out int errno);
            if (dir is null)
            {
                if (errno == Libc.ENOENT)
                    continue; // not on this host
                return new Scan(found, $"{directory}: open errno {errno}");
            }

            if (Walk(dir, root, 0, wanted, sharedGroup, found) is { } failure)
                return new Scan(found, $"{directory}: {failure}");
        }

        return new Scan(found, null);
    }

    private static string? Walk(Libc.RawDirectory dir, byte[] path, int depth, Func<int, bool> wanted, int sharedGroup, Dictionary<int, List<byte[]>> found)
    {
        while (dir.Next() is { } name)
        {
            int error = dir.Owner(name, out int uid, out int gid, out int mode);
            if (error == Libc.ENOENT)
                continue;
            if (error != 0)
                return $"statx errno {error}";
            byte[] entry = Join(path, name);
            if (wanted(uid))
            {
                Add(found, uid, entry);
                continue;
            }

            bool shared = (mode & OtherWrite) != 0 || ((mode & GroupWrite) != 0 && gid == sharedGroup);
            if ((mode & TypeMask) != Directory || !shared || depth + 1 >= MaxDepth)
                continue;
            using var inner = dir.OpenChild(name, out error);
            if (inner is null)
            {
                if (error is Libc.ENOENT or Libc.ENOTDIR or Libc.ELOOP or Libc.EACCES)
                    continue; // gone or swapped meanwhile
                return $"open errno {error}";
            }

            if (Walk(inner, entry, depth + 1, wanted, sharedGroup, found) is { } failure)
                return failure;
        }

        return dir.LastError is 0 ? null : $"readdir errno {dir.LastError}";
    }

    /// <summary>
    /// Everything in the private directories (<c>root/&lt;uid&gt;/&lt;name&gt;/</c>) of the uids <paramref name="wanted"/>:
    /// only that uid writes there, and the directories above are root's, so nothing here is a link to follow.
    /// </summary>
    public static Scan FindPrivate(string root, Func<int, bool> wanted)
    {
        var found = new Dictionary<int, List<byte[]>>();
        if (!System.IO.Directory.Exists(root))
            return new Scan(found, null);
        foreach (string own in System.IO.Directory.EnumerateDirectories(root))
        {
            if (!int.TryParse(Path.GetFileName(own), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int uid) || !wanted(uid))
                continue;
            foreach (string directory in System.IO.Directory.EnumerateDirectories(own))
            {
                byte[] path = Encoding.UTF8.GetBytes(directory);
                using var dir = Libc.RawDirectory.Open(path, out int errno);
                if (dir is null)
                    return new Scan(found, $"{directory}: open errno {errno}");
                while (dir.Next() is { } name)
                    Add(found, uid, Join(path, name));
                if (dir.LastError != 0)
                    return new Scan(found, $"{directory}: readdir errno {dir.LastError}");
            }
        }

        return new Scan(found, null);
    }

    /// <summary>Both scans' findings, or the first one's failure.</summary>
    public static Scan Merge(Scan a, Scan b)
    {
        if (a.Failure is not null || b.Failure is not null)
            return new Scan(a.Found, a.Failure ?? b.Failure);
        var found = a.Found.ToDictionary(e => e.Key, e => new List<byte[]>(e.Value));
        foreach (var (uid, paths) in b.Found)
        {
            foreach (byte[] path in paths)
                Add(found, uid, path);
        }

        return new Scan(found, null);
    }

    /// <summary>
    /// Runs the removal of <paramref name="paths"/> as <paramref name="uid"/>, or as root (<c>null</c>: only for what no
    /// other user can reach): <c>false</c> if it could not be started (a scan says what is left).
    /// </summary>
    public static async Task<bool> RemoveAsync(int? uid, IReadOnlyList<byte[]> paths, CancellationToken cancellationToken)
    {
        // The names go NUL-separated on stdin, as raw bytes (argv would need text, and has a size limit). A directory the
        // uid made unwritable is made writable by the uid first, or rm could not empty it. Every name is absolute.
        var input = new byte[paths.Sum(p => p.Length + 1)];
        int at = 0;
        foreach (byte[] path in paths)
        {
            path.CopyTo(input, at);
            at += path.Length + 1; // the NUL is already there
        }

        // find -P follows no link, not even one it is given: only the uid's own directories are made writable by it.
        // Root needs no chmod, and must not chmod by path.
        string remove = uid is null ? "exec xargs -0 -r rm -rf --one-file-system --"
            : "exec xargs -0 -r sh -c 'find -P \"$@\" -xdev -type d ! -perm -u=rwx -exec chmod u+rwx {} \\; 2>/dev/null; exec rm -rf --one-file-system -- \"$@\"' sh";
        var spec = new ProcessSpec("/bin/sh", ["-c", remove])
        {
            User = uid is { } u ? new ProcessUser(u, u) : null,
            WorkingDirectory = "/",
            InheritEnvironment = false,
            Environment = new Dictionary<string, string?> { ["PATH"] = "/usr/bin:/bin" },
            StandardInput = InputSource.FromBytes(input),
            StandardOutput = OutputTarget.Discard,
            StandardError = OutputTarget.Discard,
            Timeout = TimeSpan.FromSeconds(60),
        };
        try
        {
            await ProcessTree.RunAsync(spec, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (ProcessSpawnException)
        {
            return false;
        }
    }

    private static byte[] Join(byte[] directory, byte[] name) => [.. directory, (byte)'/', .. name];

    private static void Add(Dictionary<int, List<byte[]>> found, int uid, byte[] path)
    {
        if (!found.TryGetValue(uid, out var list))
            found[uid] = list = [];
        list.Add(path);
    }
}
