namespace Corral.Client;

/// <summary>401 Unauthorized: no bearer token, or not the server's (<c>unauthorized</c>).</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralAuthenticationException(CorralProblem problem) : CorralApiException(problem);
