using System.Text;
using Corral.Processes;
using Corral.Server.Interop;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// What a task's uid left in the host's shared writable directories (<c>/tmp</c>, <c>/var/tmp</c>, <c>/dev/shm</c>),
/// found and removed before the uid is handed out again, so a later task of that uid cannot read it.
/// <list type="bullet">
/// <item>Found by root through descriptors and raw names: a name that is not UTF-8 is found, and a name swapped for a
/// link meanwhile is never followed. Any error other than a name that vanished fails the scan (it is retried), never
/// reads as "nothing left".</item>
/// <item>Removed by <c>rm</c> running as the uid itself, with no group: it removes only what that uid could, so a link or
/// a swapped directory planted by another task gains nobody anything. A fresh scan then checks that nothing is left.</item>
/// </list>
/// </summary>
internal static class Leftovers
{
    /// <summary>The most entries one scan reads: past it the scan fails (and is retried), so a flood of names costs bounded time.</summary>
    public const int MaxEntries = 200_000;

    private const int TypeMask = 0xF000, Directory = 0x4000, OtherWrite = 0x2;

    /// <summary>What a scan found: the paths of each wanted uid, or why the scan could not be done.</summary>
    public sealed record Scan(IReadOnlyDictionary<int, List<byte[]>> Found, string? Failure);

    /// <summary>
    /// The entries of <paramref name="directories"/> owned by a uid <paramref name="wanted"/>, and those one level down
    /// in a world-writable directory that no task owns (<c>/tmp/.X11-unix</c>): a task's own directory is not entered,
    /// since its owner could swap it for a link while it is read.
    /// </summary>
    /// <param name="directories">Absolute paths.</param>
    /// <param name="wanted">The uids whose entries are sought.</param>
    /// <param name="task">Whether a uid may be a task's (the dynamic range).</param>
    public static Scan Find(IEnumerable<string> directories, Func<int, bool> wanted, Func<int, bool> task)
    {
        var found = new Dictionary<int, List<byte[]>>();
        int seen = 0;
        foreach (string directory in directories)
        {
            byte[] root = Encoding.UTF8.GetBytes(directory.TrimEnd('/'));
            using var dir = Libc.RawDirectory.Open(root, out int errno);
            if (dir is null)
            {
                if (errno == Libc.ENOENT)
                    continue; // not on this host
                return new Scan(found, $"{directory}: errno {errno}");
            }

            while (dir.Next(out errno) is { } name)
            {
                if (++seen > MaxEntries)
                    return new Scan(found, $"more than {MaxEntries} entries");
                int error = dir.Owner(name, out int uid, out int mode);
                if (error == Libc.ENOENT)
                    continue;
                if (error != 0)
                    return new Scan(found, $"{directory}: statx errno {error}");
                if (wanted(uid))
                {
                    Add(found, uid, Join(root, name));
                    continue;
                }

                if ((mode & TypeMask) != Directory || (mode & OtherWrite) == 0 || task(uid))
                    continue;
                using var inner = dir.OpenChild(name, out error);
                if (inner is null)
                {
                    if (error is Libc.ENOENT or Libc.ENOTDIR or Libc.ELOOP)
                        continue; // gone or replaced meanwhile: nothing of a task's is entered
                    return new Scan(found, $"{directory}: open errno {error}");
                }

                if (inner.Self(out int owner, out _) != 0 || task(owner))
                    continue;
                byte[] innerPath = Join(root, name);
                while (inner.Next(out error) is { } innerName)
                {
                    if (++seen > MaxEntries)
                        return new Scan(found, $"more than {MaxEntries} entries");
                    int innerError = inner.Owner(innerName, out int innerUid, out _);
                    if (innerError == Libc.ENOENT)
                        continue;
                    if (innerError != 0)
                        return new Scan(found, $"{directory}: statx errno {innerError}");
                    if (wanted(innerUid))
                        Add(found, innerUid, Join(innerPath, innerName));
                }

                if (error != 0)
                    return new Scan(found, $"{directory}: readdir errno {error}");
            }

            if (errno != 0)
                return new Scan(found, $"{directory}: readdir errno {errno}");
        }

        return new Scan(found, null);
    }

    /// <summary>Runs the removal of <paramref name="paths"/> as <paramref name="uid"/>: <c>false</c> if it could not be started (a scan says what is left).</summary>
    public static async Task<bool> RemoveAsync(int uid, IReadOnlyList<byte[]> paths, CancellationToken cancellationToken)
    {
        // The names go NUL-separated on stdin, as raw bytes (argv would need text, and has a size limit). A directory the
        // uid made unwritable is made writable by the uid first, or rm could not empty it.
        var input = new MemoryStream();
        foreach (byte[] path in paths)
        {
            input.Write(path);
            input.WriteByte(0);
        }

        var spec = new ProcessSpec("/bin/sh", ["-c", "exec xargs -0 -r sh -c 'chmod -R u+rwx -- \"$@\" 2>/dev/null; exec rm -rf --one-file-system -- \"$@\"' sh"])
        {
            User = new ProcessUser(uid, uid),
            WorkingDirectory = "/",
            InheritEnvironment = false,
            Environment = new Dictionary<string, string?> { ["PATH"] = "/usr/bin:/bin" },
            StandardInput = InputSource.FromBytes(input.ToArray()),
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
