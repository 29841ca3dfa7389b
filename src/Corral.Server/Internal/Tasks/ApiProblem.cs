namespace Corral.Server.Internal.Tasks;

/// <summary>A refused request: HTTP status, machine code, and an optional Retry-After.</summary>
internal sealed record ApiProblem(int Status, string Code, string Title, string? Detail = null, int? RetryAfter = null, IReadOnlyList<string>? Errors = null);
