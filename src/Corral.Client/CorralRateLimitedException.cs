namespace Corral.Client;

/// <summary>429 Too Many Requests: every slot and the queue are taken (<c>busy</c>); <see cref="CorralApiException.RetryAfter"/> says when to come back. Thrown once the client's own retries (for a request that is safe to repeat) are spent.</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralRateLimitedException(CorralProblem problem) : CorralApiException(problem);
