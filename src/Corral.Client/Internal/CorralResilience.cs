using System.Net;
using Polly;
using Polly.CircuitBreaker;
using Polly.Retry;
using Polly.Timeout;

namespace Corral.Client.Internal;

/// <summary>
/// The client's one resilience pipeline, outermost first: retry → circuit breaker → attempt timeout. The same
/// pipeline serves <c>AddCorralClient</c> (through <c>AddResilienceHandler</c>) and a client made without DI.
/// </summary>
internal static class CorralResilience
{
    public const string PipelineName = "corral";

    public static void Configure(ResiliencePipelineBuilder<HttpResponseMessage> builder, CorralClientOptions options)
    {
        if (options.MaxRetryAttempts > 0)
        {
            builder.AddRetry(new RetryStrategyOptions<HttpResponseMessage>
            {
                MaxRetryAttempts = options.MaxRetryAttempts,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.RetryDelay,
                MaxDelay = options.MaxRetryAfter > options.RetryDelay ? options.MaxRetryAfter : options.RetryDelay,
                ShouldHandle = args => ShouldRetryAsync(args.Outcome, args.Context, options),
                // The server's Retry-After when it sent one (ShouldRetryAsync only lets through those within MaxRetryAfter).
                DelayGenerator = args => ValueTask.FromResult(
                    args.Outcome.Result is { } response ? Problems.RetryAfter(response.Headers.RetryAfter, DateTimeOffset.UtcNow) : null),
            });
        }

        builder.AddCircuitBreaker(new CircuitBreakerStrategyOptions<HttpResponseMessage>
        {
            // Only a connection that could not be made counts: any HTTP answer, even a 5xx, means the server is alive.
            ShouldHandle = args => ValueTask.FromResult(ConnectFailures.IsConnectFailure(args.Outcome.Exception)),
            FailureRatio = options.CircuitBreakerFailureRatio,
            MinimumThroughput = options.CircuitBreakerMinimumThroughput,
            SamplingDuration = options.CircuitBreakerSamplingDuration,
            BreakDuration = options.CircuitBreakDuration,
            // Each failed probe doubles the wait, up to MaxCircuitBreakDuration.
            BreakDurationGenerator = args => ValueTask.FromResult(BreakDuration(options, args.HalfOpenAttempts)),
        });

        builder.AddTimeout(new TimeoutStrategyOptions
        {
            TimeoutGenerator = args => ValueTask.FromResult(
                args.Context.GetRequestMessage() is { } request && request.Options.TryGetValue(CallOptions.Timeout, out var timeout)
                    ? timeout
                    : options.RequestTimeout),
        });
    }

    private static bool IsJson(HttpResponseMessage response) =>
        string.Equals(response.Content.Headers.ContentType?.MediaType, "application/json", StringComparison.OrdinalIgnoreCase);

    /// <summary>The breaker's wait after <paramref name="halfOpenAttempts"/> failed probes: doubling from the base, capped.</summary>
    public static TimeSpan BreakDuration(CorralClientOptions options, int halfOpenAttempts)
    {
        double factor = Math.Pow(2, Math.Clamp(halfOpenAttempts, 0, 20));
        double ms = Math.Min(options.CircuitBreakDuration.TotalMilliseconds * factor, options.MaxCircuitBreakDuration.TotalMilliseconds);
        return TimeSpan.FromMilliseconds(Math.Max(ms, options.CircuitBreakDuration.TotalMilliseconds));
    }

    /// <summary>
    /// Retry only what cannot do anything twice (see <see cref="CallOptions.IsRetrySafe"/>), and only when it is worth it:
    /// a connection that could not be made, or a 429/503 whose <c>Retry-After</c> is within <see cref="CorralClientOptions.MaxRetryAfter"/>
    /// (not <c>agent_not_available</c>: a missing CLI does not appear by waiting; nor a JSON answer that is not a problem, such as
    /// <c>/readyz</c> saying not ready).
    /// </summary>
    private static async ValueTask<bool> ShouldRetryAsync(Outcome<HttpResponseMessage> outcome, ResilienceContext context, CorralClientOptions options)
    {
        if (!CallOptions.IsRetrySafe(outcome.Result?.RequestMessage ?? context.GetRequestMessage()))
            return false;
        if (outcome.Exception is { } exception)
            return ConnectFailures.IsConnectFailure(exception);
        var response = outcome.Result!;
        if (response.StatusCode is not (HttpStatusCode.TooManyRequests or HttpStatusCode.ServiceUnavailable))
            return false;
        if (Problems.RetryAfter(response.Headers.RetryAfter, DateTimeOffset.UtcNow) is not { } wait || wait > options.MaxRetryAfter)
            return false;
        if (!Problems.IsProblem(response))
            return !IsJson(response); // JSON that is not a problem is an answer (a record, readiness), not a refusal

        var problem = await Problems.ReadAsync(response, context.CancellationToken).ConfigureAwait(false); // buffered: the caller can read it again
        return problem.Code != CorralErrorCodes.AgentNotAvailable;
    }
}
