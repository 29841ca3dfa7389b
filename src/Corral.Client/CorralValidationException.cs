namespace Corral.Client;

/// <summary>400 Bad Request: the request is wrong (<c>invalid_request</c>; <see cref="CorralApiException.Errors"/> names each field), or its body is not JSON (<c>unsupported_media_type</c>, 415).</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralValidationException(CorralProblem problem) : CorralApiException(problem);
