using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Streaming;

/// <summary>Memory is bounded by design: a follower costs a small buffer, whatever the output and however far behind it is.</summary>
public sealed class EventStreamMemoryTests
{
    private const int Lines = 2_000_000; // 200 MB of 100-byte lines

    [Fact(Timeout = 600_000)]
    public async Task Fifty_followers_that_never_read_and_one_full_replay_of_200_MB_add_under_300_MB_and_healthz_answers_within_1_s()
    {
        string data = Directory.CreateTempSubdirectory("corral-memory-").FullName;
        var server = await ServerProcess.StartAsync(data);
        var sockets = new List<Socket>();
        try
        {
            var flood = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"yes $(printf %099d 0) | head -n {Lines}" } }, wait: 300);
            Assert.Equal(HttpStatusCode.OK, flood.Status);
            Assert.Equal(Lines * 100L, flood.Body!["output"]!["storedBytes"]!.GetValue<long>());
            string id = flood.Id!;
            long baseline = server.ResidentBytes;

            // Followers that send their request and never read a byte of the answer.
            var address = server.Http.BaseAddress!;
            for (int i = 0; i < 50; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                await socket.ConnectAsync(address.Host, address.Port);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /v1/tasks/{id}/events HTTP/1.1\r\nHost: {address.Authority}\r\n\r\n"));
                sockets.Add(socket);
            }

            long peak = baseline;
            var slowest = TimeSpan.Zero;
            using var done = new CancellationTokenSource();
            var watch = Task.Run(async () =>
            {
                using var probe = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromSeconds(30) };
                while (!done.IsCancellationRequested)
                {
                    peak = Math.Max(peak, server.ResidentBytes);
                    var clock = Stopwatch.StartNew();
                    using var health = await probe.GetAsync("/healthz");
                    Assert.Equal(HttpStatusCode.OK, health.StatusCode);
                    slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
                    await Task.Delay(100);
                }
            });

            // One full replay, read as fast as this client can.
            var (outputs, last) = await ReplayAsync(server.Http, id);
            await done.CancelAsync();
            await watch;
            peak = Math.Max(peak, server.ResidentBytes);

            TestContext.Current.TestOutputHelper?.WriteLine($"RSS baseline {baseline >> 20} MiB, peak {peak >> 20} MiB; slowest /healthz {slowest.TotalMilliseconds:0} ms; replay of {outputs} events");
            Assert.Equal(Lines, outputs);
            Assert.Equal("task.end", last);
            long grown = peak - baseline;
            Assert.True(grown < 300L << 20, $"RSS grew by {grown >> 20} MiB (baseline {baseline >> 20} MiB, peak {peak >> 20} MiB)");
            Assert.True(slowest < TimeSpan.FromSeconds(1), $"/healthz took {slowest.TotalMilliseconds:0} ms at worst");
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
            server.Kill();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_follower_that_never_reads_is_dropped_and_the_server_serves_on()
    {
        await using var server = await TestServer.StartAsync(s => s["Corral:SlowClientSeconds"] = "1");
        var flood = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "yes $(printf %099d 0) | head -n 200000" } }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, flood.Status);

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await socket.ConnectAsync(server.BaseAddress.Host, server.BaseAddress.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /v1/tasks/{flood.Id}/events HTTP/1.1\r\nHost: {server.BaseAddress.Authority}\r\n\r\n"));
        await Task.Delay(3000, TestContext.Current.CancellationToken); // it reads nothing for longer than it may

        // Reading now finds the stream cut short: far fewer bytes than its 200,000 events, then the end.
        long received = 0;
        var buffer = new byte[65536];
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            int n;
            while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token)) > 0)
                received += n;
        }
        catch (SocketException)
        {
            // a reset: dropped just the same
        }

        Assert.True(received < 200_000L * 100, $"received {received} bytes: the follower was not dropped");
        var other = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "still here" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, other.Status);
    }

    /// <summary>Counts the output events of a whole stream without keeping it; returns the last event's name.</summary>
    private static async Task<(int Outputs, string? Last)> ReplayAsync(HttpClient http, string id)
    {
        using var response = await http.GetAsync($"/v1/tasks/{id}/events", HttpCompletionOption.ResponseHeadersRead);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(), Encoding.UTF8, false, 1 << 16);
        int outputs = 0;
        string? last = null;
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("event: ", StringComparison.Ordinal))
                continue;
            last = line[7..];
            if (last == "output")
                outputs++;
        }

        return (outputs, last);
    }
}
