namespace Corral.Client.Internal;

/// <summary>What a request tells the resilience pipeline about itself (<see cref="HttpRequestMessage.Options"/>).</summary>
internal static class CallOptions
{
    /// <summary>Repeating the request cannot do anything twice (a create with an idempotency key, a cancel).</summary>
    public static readonly HttpRequestOptionsKey<bool> RetrySafe = new("Corral.RetrySafe");

    /// <summary>Never repeated, whatever happens (a liveness check answers at once).</summary>
    public static readonly HttpRequestOptionsKey<bool> NoRetry = new("Corral.NoRetry");

    /// <summary>The attempt's timeout, when it is not the client's <see cref="CorralClientOptions.RequestTimeout"/> (a long <c>?wait</c>).</summary>
    public static readonly HttpRequestOptionsKey<TimeSpan> Timeout = new("Corral.Timeout");

    /// <summary>Whether the request may be sent again: safe methods always, POST only when marked.</summary>
    public static bool IsRetrySafe(HttpRequestMessage? request) => request is not null
        && !(request.Options.TryGetValue(NoRetry, out bool never) && never)
        && (request.Method == HttpMethod.Get || request.Method == HttpMethod.Head || request.Method == HttpMethod.Delete
            || request.Method == HttpMethod.Options || request.Method == HttpMethod.Put
            || (request.Options.TryGetValue(RetrySafe, out bool safe) && safe));
}
