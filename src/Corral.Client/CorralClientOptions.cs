namespace Corral.Client;

/// <summary>
/// Where the server is, how to authenticate, and how hard to try. The defaults suit a server on the same machine
/// or network; every timeout is per attempt (a retried call can take longer; the caller's cancellation token bounds it).
/// </summary>
public sealed class CorralClientOptions
{
    /// <summary>The server's address, e.g. <c>http://127.0.0.1:8080</c>. Required.</summary>
    public Uri? BaseAddress { get; set; }

    /// <summary>The server's bearer token (<c>corral serve --token</c>), or <c>null</c> for a server without one.</summary>
    public string? Token { get; set; }

    /// <summary>One attempt of one call, until the response headers arrive (a download or an event stream then has no deadline). Default 30 s.</summary>
    public TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Making the TCP connection. Default 5 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Retries of a call that is safe to repeat (a GET, a DELETE, a cancel, a create with an idempotency key), after a
    /// connection that could not be made or a 429/503 with <c>Retry-After</c>. 0 turns retries off. Default 3.
    /// </summary>
    public int MaxRetryAttempts { get; set; } = 3;

    /// <summary>The first wait before retrying a connection, doubled each time (with jitter). Default 0.5 s.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>
    /// The longest <c>Retry-After</c> the client waits for by itself; a longer one is not retried, and the
    /// <see cref="CorralApiException.RetryAfter"/> of the exception says how long the server asked for. Default 30 s.
    /// </summary>
    public TimeSpan MaxRetryAfter { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The share of attempts within <see cref="CircuitBreakerSamplingDuration"/> that failed to connect at which the
    /// circuit opens (then calls fail at once with <see cref="CorralUnreachableException.CircuitOpen"/>). Only
    /// connections that could not be made count as failures; any HTTP answer counts as the server being alive. Default 0.5.
    /// </summary>
    public double CircuitBreakerFailureRatio { get; set; } = 0.5;

    /// <summary>The fewest attempts within <see cref="CircuitBreakerSamplingDuration"/> before the circuit can open. Default 3.</summary>
    public int CircuitBreakerMinimumThroughput { get; set; } = 3;

    /// <summary>The window the breaker counts in. Default 10 s.</summary>
    public TimeSpan CircuitBreakerSamplingDuration { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the circuit stays open before one probe is let through; doubled after each failed probe. Default 5 s.</summary>
    public TimeSpan CircuitBreakDuration { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>The cap on the doubled <see cref="CircuitBreakDuration"/>. Default 5 min.</summary>
    public TimeSpan MaxCircuitBreakDuration { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Give every create without an <see cref="CreateTaskRequest.IdempotencyKey"/> one of its own, so that it is safe to
    /// retry and a dropped <c>?wait</c> can be resumed. Off: such a create is never retried. Default on.
    /// </summary>
    public bool GenerateIdempotencyKeys { get; set; } = true;

    /// <summary>The longest server-side wait (<c>?wait=</c>) of one request; a longer wait is made of several. Default 5 min.</summary>
    public TimeSpan MaxServerWait { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>The longest pause between two polls of a task when the client waits by polling. Default 2 s.</summary>
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// An event stream that brings nothing for this long (not even the server's keep-alive, every 15 s by default)
    /// is taken as dropped, and reconnected. Default 60 s.
    /// </summary>
    public TimeSpan StreamIdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long an event stream keeps trying to reconnect before it gives up with <see cref="CorralUnreachableException"/>:
    /// from the last event or connection that lasted (5 s or more), through failed or empty attempts. Default 2 min.
    /// </summary>
    public TimeSpan StreamReconnectWindow { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>A copy, so a client's options cannot change under it.</summary>
    internal CorralClientOptions Copy() => (CorralClientOptions)MemberwiseClone();

    /// <summary>Throws when the options cannot work.</summary>
    internal void Validate()
    {
        if (BaseAddress is not { IsAbsoluteUri: true })
            throw new ArgumentException("CorralClientOptions.BaseAddress must be an absolute URI, e.g. http://127.0.0.1:8080.", nameof(BaseAddress));
        if (RequestTimeout <= TimeSpan.Zero || ConnectTimeout <= TimeSpan.Zero || StreamIdleTimeout <= TimeSpan.Zero)
            throw new ArgumentException("CorralClientOptions: timeouts must be positive.");
        if (MaxRetryAttempts < 0)
            throw new ArgumentException("CorralClientOptions.MaxRetryAttempts must be 0 or more.", nameof(MaxRetryAttempts));
    }
}
