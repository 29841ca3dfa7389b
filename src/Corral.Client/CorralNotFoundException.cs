namespace Corral.Client;

/// <summary>404 Not Found: no such task (<c>not_found</c>).</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralNotFoundException(CorralProblem problem) : CorralApiException(problem);
