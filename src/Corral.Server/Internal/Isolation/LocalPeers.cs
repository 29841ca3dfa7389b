using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Corral.Server.Interop;

namespace Corral.Server.Internal.Isolation;

/// <summary>
/// Who is at the other end of a TCP connection made from this host: the uid that owns the client's socket, asked of
/// the kernel's socket diagnostics by the connection's addresses, or, where the kernel cannot answer that, read from its
/// tables of this network namespace's sockets (<c>/proc/net/tcp</c>, <c>tcp6</c>), which cost milliseconds per read. A
/// socket's owner is the user that made it, so a task cannot pass for another uid.
/// </summary>
internal static class LocalPeers
{
    private const string Tcp = "/proc/net/tcp";
    private const string Tcp6 = "/proc/net/tcp6";

    /// <summary>
    /// Whether this kernel answers socket lookups (it has TCP socket diagnostics): one that does not says "absent" of
    /// every socket. Asked once, of a connection of this process's own.
    /// </summary>
    private static readonly Lazy<bool> KernelAnswers = new(() =>
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            client.Connect((IPEndPoint)listener.LocalEndpoint);
            using var accepted = listener.AcceptSocket();
            return Libc.TcpSocket((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!, out _, out _) == Libc.SocketAnswer.Found;
        }
        catch (SocketException)
        {
            return false;
        }
    });

    /// <summary>The uid that owns the client's end of the connection from <paramref name="client"/> to <paramref name="server"/>, or <c>null</c> if no open socket of this host has it (it is closed, even with its request sent, or not local).</summary>
    public static int? OwnerOf(IPEndPoint client, IPEndPoint server)
    {
        client = Normalized(client);
        server = Normalized(server);
        // One lookup finds an IPv4 client socket and an IPv6 one connected to a mapped address alike (the kernel hashes
        // both by their IPv4 addresses).
        switch (Libc.TcpSocket(client, server, out uint uid, out ulong inode))
        {
            case Libc.SocketAnswer.Found:
                return Owner(uid, inode);
            case Libc.SocketAnswer.Absent when KernelAnswers.Value:
                return null; // gone: no need to read the tables, which would cost a client that resets at will 7 ms each time
        }

        // An IPv4 client's socket is in tcp, unless it is an IPv6 socket that connected to a mapped address.
        if (client.AddressFamily == AddressFamily.InterNetwork && Read(Tcp) is { } v4 && Find(v4, client, server) is { } owner)
            return owner;
        return Read(Tcp6) is { } v6 ? Find(v6, client, server) : null;
    }

    /// <summary>
    /// The uid column of the line of <paramref name="table"/> (the text of <c>/proc/net/tcp</c> or <c>tcp6</c>) whose
    /// local address is <paramref name="client"/> and remote address <paramref name="server"/>; <c>null</c> if none.
    /// </summary>
    public static int? Find(string table, IPEndPoint client, IPEndPoint server)
    {
        client = Normalized(client);
        server = Normalized(server);
        Span<Range> fields = stackalloc Range[11];
        foreach (var line in table.AsSpan().EnumerateLines())
        {
            // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode ..."
            var text = line.Trim();
            if (text.Split(fields, ' ', StringSplitOptions.RemoveEmptyEntries) < 10)
                continue;
            if (Parse(text[fields[1]]) is not { } local || !local.Equals(client) || Parse(text[fields[2]]) is not { } remote || !remote.Equals(server))
                continue;
            return ulong.TryParse(text[fields[9]], NumberStyles.None, CultureInfo.InvariantCulture, out ulong inode)
                && uint.TryParse(text[fields[7]], NumberStyles.None, CultureInfo.InvariantCulture, out uint uid) ? Owner(uid, inode) : null;
        }

        return null;
    }

    /// <summary>A socket its process closed (time-wait, orphaned) has no inode, and its uid reads 0: no owner.</summary>
    private static int? Owner(uint uid, ulong inode) => inode == 0 || uid > int.MaxValue ? null : (int)uid;

    /// <summary>An address as the kernel writes it: the address's 32-bit words in hex, each in the host's byte order, a colon, the port in hex.</summary>
    private static IPEndPoint? Parse(ReadOnlySpan<char> field)
    {
        int colon = field.IndexOf(':');
        var hex = colon < 0 ? default : field[..colon];
        if (hex.Length is not (8 or 32) || !int.TryParse(field[(colon + 1)..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int port))
            return null;
        Span<byte> bytes = stackalloc byte[hex.Length / 2];
        for (int word = 0; word < hex.Length / 8; word++)
        {
            if (!uint.TryParse(hex.Slice(word * 8, 8), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out uint value))
                return null;
            var target = bytes.Slice(word * 4, 4);
            if (BitConverter.IsLittleEndian)
                BinaryPrimitives.WriteUInt32LittleEndian(target, value);
            else
                BinaryPrimitives.WriteUInt32BigEndian(target, value);
        }

        return Normalized(new IPEndPoint(new IPAddress(bytes), port));
    }

    private static IPEndPoint Normalized(IPEndPoint endPoint) =>
        endPoint.Address.IsIPv4MappedToIPv6 ? new IPEndPoint(endPoint.Address.MapToIPv4(), endPoint.Port) : endPoint;

    private static string? Read(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null; // no IPv6 on this host
        }
    }
}
