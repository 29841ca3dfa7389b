namespace Corral.Client;

/// <summary>413 Payload Too Large: the body is larger than the server takes (<c>payload_too_large</c>, <c>Corral:MaxRequestBodyBytes</c>).</summary>
/// <param name="problem">The answer.</param>
public sealed class CorralPayloadTooLargeException(CorralProblem problem) : CorralApiException(problem);
