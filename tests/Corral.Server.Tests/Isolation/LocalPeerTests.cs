using System.Net;
using System.Net.Sockets;
using Corral.Server.Internal.Isolation;

namespace Corral.Server.Tests.Isolation;

/// <summary>The owner of a local connection's client socket, read from the kernel's socket tables.</summary>
public sealed class LocalPeerTests
{
    private const string Header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    [Fact(Timeout = 10_000)]
    public void The_uid_of_the_line_whose_local_and_remote_addresses_are_the_clients_and_the_servers_is_the_owner()
    {
        // 127.0.0.1:40000 → 127.0.0.1:8080 owned by 1900000007; the server's own end of it, owned by root; another client.
        string table = Header +
            "   0: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0000 20 4 30 10 -1\n" +
            "   1: 0100007F:9C40 0100007F:1F90 01 00000000:00000000 00:00000000 00000000 1900000007        0 2 1 0000 20 4 30 10 -1\n" +
            "   2: 0100007F:9C41 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000 20 4 30 10 -1\n";
        var server = new IPEndPoint(IPAddress.Loopback, 8080);
        Assert.Equal(1_900_000_007, LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40000), server));
        Assert.Equal(1000, LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40001), server));
        Assert.Null(LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40002), server));
        Assert.Null(LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 8081)));
    }

    [Fact(Timeout = 10_000)]
    public void Ipv6_and_ipv4_mapped_addresses_are_read_word_by_word_in_the_hosts_byte_order()
    {
        // ::1 and ::ffff:127.0.0.1 as the kernel prints them on a little-endian host.
        string table = Header +
            "   0: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:1F90 01 00000000:00000000 00:00000000 00000000  42        0 1 1 0000 20 4 30 10 -1\n" +
            "   1: 0000000000000000FFFF00000100007F:9C41 0000000000000000FFFF00000100007F:1F90 01 00000000:00000000 00:00000000 00000000  43        0 2 1 0000 20 4 30 10 -1\n";
        Assert.Equal(42, LocalPeers.Find(table, new IPEndPoint(IPAddress.IPv6Loopback, 40000), new IPEndPoint(IPAddress.IPv6Loopback, 8080)));
        // A server that sees the mapped form and a client socket that is an IPv6 one alike.
        var mapped = IPAddress.Loopback.MapToIPv6();
        Assert.Equal(43, LocalPeers.Find(table, new IPEndPoint(mapped, 40001), new IPEndPoint(IPAddress.Loopback, 8080)));
        Assert.Equal(43, LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40001), new IPEndPoint(mapped, 8080)));
    }

    [Fact(Timeout = 10_000)]
    public void A_client_socket_its_process_closed_has_no_owner_though_its_uid_column_reads_root()
    {
        // Time-wait (05): the client sent its request and closed; the server may still read the request.
        string table = Header +
            "   0: 0100007F:9C40 0100007F:1F90 05 00000000:00000000 03:00000F2C 00000000     0        0 0 3 0000000000000000\n";
        Assert.Null(LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 8080)));
    }

    [Fact(Timeout = 10_000)]
    public void Lines_that_are_not_sockets_are_passed_over()
    {
        string table = Header + "garbage\n   0: zz:1 yy:2 01 a b c 5\n   1: 0100007F:9C40 0100007F:1F90 01 0:0 0:0 0 notanumber 0 1\n";
        Assert.Null(LocalPeers.Find(table, new IPEndPoint(IPAddress.Loopback, 40000), new IPEndPoint(IPAddress.Loopback, 8080)));
    }

    [Fact(Timeout = 10_000)]
    public async Task A_real_loopback_connection_is_found_owned_by_this_process_user()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
        using var accepted = await listener.AcceptSocketAsync();
        int? owner = LocalPeers.OwnerOf((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!);
        Assert.Equal(Corral.Server.Interop.Libc.geteuid(), owner);
    }
}
