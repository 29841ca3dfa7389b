namespace Corral.Benchmarks.Harness;

/// <summary>
/// Where a scenario's server keeps its data: where a deployed one does, outside the host's shared directories
/// (<c>/var/lib/corral-bench/</c> when run as root, as the systemd unit keeps <c>/var/lib/corral</c>), so its tasks get
/// a <c>/tmp</c> of their own and its sweep never scans the host's; <c>CORRAL_BENCH_DATA</c> names another parent.
/// A server whose data is under <c>/tmp</c> must leave the host's <c>/tmp</c> shared with its tasks, and then each
/// sweep reads every name in it.
/// <para>
/// The parent is marked a top of directory hierarchies (<c>chattr +T</c>), so ext4 places each run's data directory
/// in a block group of its own. Without that, a run's directories go to the group where the last run's were deleted,
/// and on ext4 without a journal every new inode then scans past the ones deleted in the last minutes (measured:
/// <c>find_inode_bit</c> and <c>recently_deleted</c> took 27 % of the server's CPU in a run that followed another).
/// </para>
/// </summary>
internal static class ServerData
{
    /// <summary>A new, empty data directory whose name starts with <paramref name="prefix"/>, traversable by the tasks' uids.</summary>
    public static string Create(string prefix)
    {
        string parent = Environment.GetEnvironmentVariable("CORRAL_BENCH_DATA") is { Length: > 0 } configured ? configured
            : Environment.UserName == "root" ? "/var/lib/corral-bench" : Path.GetTempPath();
        Directory.CreateDirectory(parent);
        MarkTopDirectory(parent);
        string data = Path.Combine(parent, prefix + Leftovers.RunId + "-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(data);
        foreach (string d in new[] { parent, data })
            File.SetUnixFileMode(d, File.GetUnixFileMode(d) | UnixFileMode.OtherExecute | UnixFileMode.GroupExecute);
        return data;
    }

    private static unsafe void MarkTopDirectory(string directory)
    {
        const nuint GetFlags = 0x80086601, SetFlags = 0x40086602; // FS_IOC_GETFLAGS, FS_IOC_SETFLAGS
        const int TopDirectory = 0x20000; // FS_TOPDIR_FL
        byte[] path = System.Text.Encoding.UTF8.GetBytes(directory + "\0");
        fixed (byte* p = path)
        {
            int fd = Native.open(p, Native.O_RDONLY | Native.O_CLOEXEC | 0x10000, 0); // O_DIRECTORY
            if (fd < 0)
                return;
            int flags = 0;
            // Best effort: tmpfs and others have no such flag, and need none.
            if (Native.ioctl(fd, GetFlags, &flags) == 0 && (flags & TopDirectory) == 0)
            {
                flags |= TopDirectory;
                Native.ioctl(fd, SetFlags, &flags);
            }

            Native.close(fd);
        }
    }
}
