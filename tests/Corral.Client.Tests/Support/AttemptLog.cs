using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;

namespace Corral.Client.Tests.Support;

/// <summary>One attempt that reached the transport: when it was sent, and what came back (null: no answer).</summary>
public sealed record Attempt(HttpMethod Method, string Path, TimeSpan SentAt, HttpStatusCode? Status, TimeSpan? AnsweredAt);

/// <summary>A handler inside the resilience pipeline (added to AddCorralClient's builder): it sees every attempt.</summary>
public sealed class AttemptLog : DelegatingHandler
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public ConcurrentQueue<Attempt> Attempts { get; } = new();

    public Attempt[] For(string pathPrefix) => Attempts.Where(a => a.Path.StartsWith(pathPrefix, StringComparison.Ordinal)).ToArray();

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var sent = _clock.Elapsed;
        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            Attempts.Enqueue(new Attempt(request.Method, request.RequestUri!.AbsolutePath, sent, response.StatusCode, _clock.Elapsed));
            return response;
        }
        catch
        {
            Attempts.Enqueue(new Attempt(request.Method, request.RequestUri!.AbsolutePath, sent, null, null));
            throw;
        }
    }
}
