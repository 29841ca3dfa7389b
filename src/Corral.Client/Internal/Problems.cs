using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;

namespace Corral.Client.Internal;

/// <summary>Error answers: ProblemDetails read into a <see cref="CorralProblem"/>, and the exception type for its status.</summary>
internal static class Problems
{
    public const string MediaType = "application/problem+json";

    public static bool IsProblem(HttpResponseMessage response) =>
        string.Equals(response.Content.Headers.ContentType?.MediaType, MediaType, StringComparison.OrdinalIgnoreCase);

    /// <summary>The answer's problem (any body: a proxy's HTML gives a problem without a code).</summary>
    public static async Task<CorralProblem> ReadAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        JsonElement body = default;
        try
        {
            // Buffered, so the retry predicate and then the caller can both read it.
            await response.Content.LoadIntoBufferAsync(cancellationToken).ConfigureAwait(false);
            byte[] bytes = await response.Content.ReadAsByteArrayAsync(cancellationToken).ConfigureAwait(false);
            if (bytes.Length > 0)
                body = JsonSerializer.Deserialize<JsonElement>(bytes);
        }
        catch (JsonException)
        {
        }

        return From(response.StatusCode, body, RetryAfter(response.Headers.RetryAfter, DateTimeOffset.UtcNow));
    }

    /// <summary>A problem from its status, its body (<c>default</c> when none) and its <c>Retry-After</c>.</summary>
    public static CorralProblem From(HttpStatusCode status, JsonElement body, TimeSpan? retryAfter)
    {
        bool isObject = body.ValueKind == JsonValueKind.Object;
        var errors = new List<CorralFieldError>();
        if (isObject && body.TryGetProperty("errors", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var e in list.EnumerateArray())
            {
                if (e.ValueKind == JsonValueKind.Object)
                    errors.Add(new CorralFieldError(Text(e, "field") ?? "", Text(e, "message") ?? ""));
            }
        }

        return new CorralProblem(status, isObject ? Text(body, "code") : null, isObject ? Text(body, "title") : null,
            isObject ? Text(body, "detail") : null, errors, retryAfter, body);
    }

    /// <summary>The exception for a problem: by status, so a caller catches what it handles alike.</summary>
    public static CorralApiException Exception(CorralProblem problem) => (int)problem.Status switch
    {
        400 or 415 => new CorralValidationException(problem),
        401 => new CorralAuthenticationException(problem),
        404 => new CorralNotFoundException(problem),
        409 => new CorralConflictException(problem),
        413 => new CorralPayloadTooLargeException(problem),
        429 => new CorralRateLimitedException(problem),
        503 => new CorralServiceUnavailableException(problem),
        507 => new CorralStorageFullException(problem),
        _ => new CorralApiException(problem),
    };

    /// <summary>The wait a <c>Retry-After</c> asks for (seconds, or a date relative to <paramref name="now"/>), never negative.</summary>
    public static TimeSpan? RetryAfter(RetryConditionHeaderValue? header, DateTimeOffset now) => header switch
    {
        { Delta: { } delta } => delta < TimeSpan.Zero ? TimeSpan.Zero : delta,
        { Date: { } date } => date > now ? date - now : TimeSpan.Zero,
        _ => null,
    };

    private static string? Text(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;
}
