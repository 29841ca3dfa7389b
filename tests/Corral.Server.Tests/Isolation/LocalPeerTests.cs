using System.Net;
using System.Net.Sockets;
using Corral.Server.Internal.Isolation;
using Corral.Server.Interop;
using Corral.Testing.Support;

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

    [Fact(Timeout = 10_000)]
    public async Task The_kernel_answers_for_a_real_connection_without_the_tables()
    {
        using var pair = await Pair.OpenAsync(AddressFamily.InterNetwork);
        var (client, server) = pair.Ends;
        Assert.Equal(Libc.SocketAnswer.Found, Libc.TcpSocket(client, server, out uint uid, out ulong inode));
        Assert.Equal((uint)Libc.geteuid(), uid);
        Assert.NotEqual(0UL, inode);
        // The reverse direction is the server's own socket; a port nobody uses is no socket.
        Assert.Equal(Libc.SocketAnswer.Found, Libc.TcpSocket(server, client, out _, out _));
        Assert.Equal(Libc.SocketAnswer.Absent, Libc.TcpSocket(new IPEndPoint(IPAddress.Loopback, 1), server, out _, out _));
    }

    [Fact(Timeout = 10_000)]
    public async Task An_ipv6_client_socket_connected_to_a_mapped_address_is_found_by_its_ipv4_addresses()
    {
        using var pair = await Pair.OpenAsync(AddressFamily.InterNetworkV6);
        var (client, server) = pair.Ends;
        Assert.Equal(AddressFamily.InterNetwork, client.AddressFamily);
        Assert.Equal(Libc.SocketAnswer.Found, Libc.TcpSocket(client, server, out uint uid, out _));
        Assert.Equal((uint)Libc.geteuid(), uid);
        Assert.Equal(Libc.geteuid(), LocalPeers.OwnerOf(new IPEndPoint(client.Address.MapToIPv6(), client.Port), server));
    }

    [Fact(Timeout = 10_000)]
    public async Task An_ipv6_connection_is_found_by_its_ipv6_addresses()
    {
        using var pair = await Pair.OpenAsync(AddressFamily.InterNetworkV6, IPAddress.IPv6Loopback);
        var (client, server) = pair.Ends;
        Assert.Equal(AddressFamily.InterNetworkV6, client.AddressFamily);
        Assert.Equal(Libc.SocketAnswer.Found, Libc.TcpSocket(client, server, out uint uid, out _));
        Assert.Equal((uint)Libc.geteuid(), uid);
        Assert.Equal(Libc.geteuid(), LocalPeers.OwnerOf(client, server));
    }

    [Fact(Timeout = 10_000)]
    public async Task A_client_that_closed_its_socket_first_has_no_owner()
    {
        using var pair = await Pair.OpenAsync(AddressFamily.InterNetwork);
        var (client, server) = pair.Ends;
        pair.Client.Close(); // the closing side's socket waits in time-wait, its inode gone
        await Proc.WaitForAsync(() => Libc.TcpSocket(client, server, out _, out ulong inode) == Libc.SocketAnswer.Found && inode == 0, TimeSpan.FromSeconds(5), "the client's socket in time-wait");
        Assert.Null(LocalPeers.OwnerOf(client, server));
    }

    [Fact(Timeout = 30_000)]
    public async Task A_socket_another_uid_made_is_that_uids()
    {
        if (Libc.geteuid() != 0)
            Assert.Skip("Making a socket as another uid needs root (CI runs as root).");
        int other = Proc.UnusedUid();
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        // A process of that uid connects and waits for its stdin to close.
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("setpriv",
            [$"--reuid={other}", $"--regid={other}", "--clear-groups", "bash", "-c",
             $"exec 3<>/dev/tcp/127.0.0.1/{port}; read -r _"]) { RedirectStandardInput = true })!;
        try
        {
            using var accepted = await listener.AcceptSocketAsync().WaitAsync(TimeSpan.FromSeconds(20));
            Assert.Equal(other, LocalPeers.OwnerOf((IPEndPoint)accepted.RemoteEndPoint!, (IPEndPoint)accepted.LocalEndPoint!));
        }
        finally
        {
            process.StandardInput.Close();
            if (!process.WaitForExit(5_000))
                process.Kill();
        }
    }

    /// <summary>A loopback connection: the client's end and the server's end as the server sees them.</summary>
    private sealed class Pair : IDisposable
    {
        private readonly TcpListener _listener;
        private readonly Socket _accepted;

        private Pair(TcpListener listener, Socket client, Socket accepted)
        {
            _listener = listener;
            Client = client;
            _accepted = accepted;
        }

        public Socket Client { get; }

        public (IPEndPoint Client, IPEndPoint Server) Ends => ((IPEndPoint)_accepted.RemoteEndPoint!, (IPEndPoint)_accepted.LocalEndPoint!);

        /// <summary>
        /// A listener on <paramref name="listen"/> (default 127.0.0.1) and a client socket of <paramref name="family"/>
        /// (an IPv6 one reaches an IPv4 listener through the mapped address).
        /// </summary>
        public static async Task<Pair> OpenAsync(AddressFamily family, IPAddress? listen = null)
        {
            listen ??= IPAddress.Loopback;
            var listener = new TcpListener(listen, 0);
            listener.Start();
            var client = new Socket(family, SocketType.Stream, ProtocolType.Tcp);
            if (family == AddressFamily.InterNetworkV6)
                client.DualMode = true;
            int port = ((IPEndPoint)listener.LocalEndpoint).Port;
            await client.ConnectAsync(family == AddressFamily.InterNetworkV6 && listen.AddressFamily == AddressFamily.InterNetwork ? listen.MapToIPv6() : listen, port);
            return new Pair(listener, client, await listener.AcceptSocketAsync());
        }

        public void Dispose()
        {
            Client.Dispose();
            _accepted.Dispose();
            _listener.Stop();
        }
    }
}
