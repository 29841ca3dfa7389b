using System.Net;
using System.Net.Sockets;

namespace Corral.Client.Tests.Support;

/// <summary>
/// A TCP proxy on a loopback port in front of a server, that a test can make misbehave: drop every connection at
/// once (a network cut), or go silent (connections stay open, no byte passes: a stuck middlebox).
/// </summary>
public sealed class LoopbackProxy : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

    private readonly Uri _upstream;

    private readonly List<TcpClient> _connections = [];

    private readonly CancellationTokenSource _stop = new();

    private volatile bool _silent;

    public LoopbackProxy(Uri upstream)
    {
        _upstream = upstream;
        _listener.Start();
        _ = AcceptAsync();
    }

    public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

    /// <summary>Connections accepted so far.</summary>
    public int Accepted { get; private set; }

    /// <summary>Resets every open connection (the client sees its stream break).</summary>
    public void DropAll()
    {
        lock (_connections)
        {
            foreach (var c in _connections)
            {
                if (c.Client is { } socket)
                    socket.LingerState = new LingerOption(true, 0); // RST, not FIN
                c.Dispose();
            }

            _connections.Clear();
        }
    }

    /// <summary>From now on no byte passes on the connections open now; new ones work.</summary>
    public void SilenceOpenConnections() => _silent = true;

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        DropAll();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            Accepted++;
            _ = PipeAsync(client);
        }
    }

    private async Task PipeAsync(TcpClient client)
    {
        var server = new TcpClient();
        lock (_connections)
        {
            _connections.Add(client);
            _connections.Add(server);
        }

        bool silentAtStart = _silent;
        try
        {
            await server.ConnectAsync(_upstream.Host, _upstream.Port, _stop.Token);
            // A connection silenced later stops passing bytes; one made after the silence works.
            var frozen = new Func<bool>(() => _silent && !silentAtStart);
            await Task.WhenAny(CopyAsync(client.GetStream(), server.GetStream(), frozen), CopyAsync(server.GetStream(), client.GetStream(), frozen));
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            if (!_silent || silentAtStart)
            {
                lock (_connections)
                {
                    _connections.Remove(client);
                    _connections.Remove(server);
                }

                client.Dispose();
                server.Dispose();
            }
        }
    }

    private async Task CopyAsync(NetworkStream from, NetworkStream to, Func<bool> frozen)
    {
        var buffer = new byte[16 * 1024];
        while (true)
        {
            int n = await from.ReadAsync(buffer, _stop.Token);
            if (n == 0)
                return;
            if (frozen())
            {
                await Task.Delay(Timeout.Infinite, _stop.Token); // hold the connection open, pass nothing
            }

            await to.WriteAsync(buffer.AsMemory(0, n), _stop.Token);
        }
    }
}
