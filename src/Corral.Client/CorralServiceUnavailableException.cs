namespace Corral.Client;

/// <summary>503 Service Unavailable: <c>agent_not_available</c>, <c>draining</c>, <c>storage_unavailable</c>; <see cref="CorralApiException.RetryAfter"/> says when to come back where it is worth it.</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralServiceUnavailableException(CorralProblem problem) : CorralApiException(problem);
