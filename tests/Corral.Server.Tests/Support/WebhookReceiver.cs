using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Corral.Server.Tests.Support;

/// <summary>One request a <see cref="WebhookReceiver"/> got, and what it answered.</summary>
internal sealed record ReceivedWebhook(byte[] Body, string? Id, string? Timestamp, string? Signature, string? ContentType, string? UserAgent, int Answer)
{
    public JsonNode Json => JsonNode.Parse(Body)!;

    public string Type => Json["type"]!.GetValue<string>();
}

/// <summary>A webhook receiver on a free loopback port (real Kestrel): records every request, answers 500 to the first <see cref="FailFirst"/>.</summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ReceivedWebhook> _received = new();
    private int _failFirst;
    private int _failed;

    private WebhookReceiver(WebApplication app) => _app = app;

    /// <summary>Where to send webhooks (ends with a slash; any path below it is taken).</summary>
    public Uri Url { get; private set; } = null!;

    /// <summary>How many requests get 500 before the receiver takes them (<c>int.MaxValue</c>: all).</summary>
    public int FailFirst
    {
        get => Volatile.Read(ref _failFirst);
        set
        {
            Volatile.Write(ref _failed, 0);
            Volatile.Write(ref _failFirst, value);
        }
    }

    public IReadOnlyList<ReceivedWebhook> Received => [.. _received];

    /// <summary>A new secret in the Standard Webhooks format.</summary>
    public static string NewSecret() => "whsec_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.MapPost("/{**path}", receiver.ReceiveAsync);
        await app.StartAsync();
        receiver.Url = new Uri(app.Urls.Single() + "/");
        return receiver;
    }

    /// <summary>Waits until the requests received satisfy <paramref name="condition"/>.</summary>
    public async Task<IReadOnlyList<ReceivedWebhook>> WaitForAsync(Func<IReadOnlyList<ReceivedWebhook>, bool> condition, TimeSpan deadline, string what)
    {
        var until = DateTime.UtcNow + deadline;
        while (true)
        {
            var received = Received;
            if (condition(received))
                return received;
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"Timed out waiting for {what}; received {received.Count}: {string.Join(" | ", received.Select(r => $"{r.Answer} {r.Id} {r.Type}"))}");
            await Task.Delay(50);
        }
    }

    private async Task ReceiveAsync(HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer);
        bool fail = Interlocked.Increment(ref _failed) <= FailFirst;
        int answer = fail ? 500 : 204;
        var headers = context.Request.Headers;
        _received.Enqueue(new ReceivedWebhook(buffer.ToArray(), headers["webhook-id"].FirstOrDefault(), headers["webhook-timestamp"].FirstOrDefault(),
            headers["webhook-signature"].FirstOrDefault(), headers.ContentType.FirstOrDefault(), headers.UserAgent.FirstOrDefault(), answer));
        context.Response.StatusCode = answer;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
