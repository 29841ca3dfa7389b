using Corral.Agents.Interop;

namespace Corral.Agents.Internal;

/// <summary>
/// Files an agent wrote in a directory of its own (its HOME), read by a host that may be root. The agent may have
/// planted anything there: a link to a root-only file, a FIFO that blocks whoever opens it, a hard link to another
/// user's file, a sparse file of terabytes. So a file is read only when it is a regular file, reached beneath the
/// directory without a link anywhere on the way, owned by the directory's owner, and no larger than a bound.
/// </summary>
internal static class OwnFiles
{
    /// <summary>
    /// <paramref name="relative"/> beneath <paramref name="directory"/>, open for reading, or <c>null</c> when it is
    /// missing or is not such a file (or this kernel predates Linux 5.6's <c>openat2</c>: nothing is read then).
    /// </summary>
    public static FileStream? OpenRead(string directory, string relative, long maxBytes)
    {
        using var root = Libc.OpenDirectory(directory);
        if (root is null || Libc.KindOf(root) is not { Directory: true } owner)
            return null;
        var file = Libc.OpenBeneath(root, relative);
        if (file is null)
            return null;
        if (Libc.KindOf(file) is not { Regular: true } kind || kind.Uid != owner.Uid || kind.Size > maxBytes)
        {
            file.Dispose();
            return null;
        }

        return new FileStream(file, FileAccess.Read, bufferSize: 0);
    }

    /// <summary>Copies at most <paramref name="maxBytes"/> of <paramref name="source"/> (a file that grows meanwhile is cut there): whether all of it fit.</summary>
    public static bool CopyAtMost(Stream source, Stream destination, long maxBytes)
    {
        var buffer = new byte[81920];
        long copied = 0;
        int read;
        while ((read = source.Read(buffer, 0, (int)Math.Min(buffer.Length, maxBytes + 1 - copied))) > 0)
        {
            copied += read;
            if (copied > maxBytes)
                return false;
            destination.Write(buffer, 0, read);
        }

        return true;
    }
}
