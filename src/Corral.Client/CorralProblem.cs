using System.Net;
using System.Text.Json;

namespace Corral.Client;

/// <summary>An error answer of the server: its RFC 9457 ProblemDetails, read.</summary>
/// <param name="Status">The HTTP status.</param>
/// <param name="Code">Corral's reason (see <see cref="CorralErrorCodes"/>); <c>null</c> when the body was not Corral's (a proxy's, say).</param>
/// <param name="Title">A short summary of the problem type.</param>
/// <param name="Detail">What happened, for people.</param>
/// <param name="Errors">The fields that were wrong (for <c>invalid_request</c>); empty otherwise.</param>
/// <param name="RetryAfter">How long the server asked to wait before trying again (<c>Retry-After</c>), when it said.</param>
/// <param name="Body">The body as sent (<c>type</c>, <c>traceId</c>, …), or <c>default</c> when it was not JSON.</param>
public sealed record CorralProblem(HttpStatusCode Status, string? Code, string? Title, string? Detail,
    IReadOnlyList<CorralFieldError> Errors, TimeSpan? RetryAfter, JsonElement Body);
