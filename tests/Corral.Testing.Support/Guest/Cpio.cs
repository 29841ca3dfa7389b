using System.Text;

namespace Corral.Testing.Support.Guest;

/// <summary>Writes a cpio archive in the "newc" format the kernel unpacks as an initramfs (directories, files, symlinks).</summary>
public sealed class Cpio
{
    private readonly List<(string Name, int Mode, byte[] Data)> _entries = [];

    public Cpio Directory(string name, int mode = 0x1ED /* 0755 */)
    {
        _entries.Add((name, 0x4000 | mode, []));
        return this;
    }

    public Cpio File(string name, byte[] data, int mode = 0x1ED)
    {
        _entries.Add((name, 0x8000 | mode, data));
        return this;
    }

    public Cpio Symlink(string name, string target)
    {
        _entries.Add((name, 0xA000 | 0x1FF, Encoding.UTF8.GetBytes(target)));
        return this;
    }

    /// <summary>The archive: each entry as a 110-byte ASCII header, its NUL-terminated name and its data, each padded to 4 bytes; then the trailer.</summary>
    public byte[] ToBytes()
    {
        using var output = new MemoryStream();
        int inode = 1;
        foreach (var (name, mode, data) in _entries)
            Write(output, inode++, name, mode, data, links: (mode & 0x4000) != 0 ? 2 : 1);
        Write(output, 0, "TRAILER!!!", 0, [], links: 1);
        return output.ToArray();
    }

    private static void Write(Stream output, int inode, string name, int mode, byte[] data, int links)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name + "\0");
        var header = new StringBuilder("070701");
        foreach (long field in new long[] { inode, mode, 0, 0, links, 0, data.Length, 0, 0, 0, 0, nameBytes.Length, 0 })
            header.Append(field.ToString("x8", System.Globalization.CultureInfo.InvariantCulture));
        output.Write(Encoding.ASCII.GetBytes(header.ToString()));
        output.Write(nameBytes);
        Pad(output);
        output.Write(data);
        Pad(output);
    }

    private static void Pad(Stream output)
    {
        while (output.Position % 4 != 0)
            output.WriteByte(0);
    }
}
