using System.Net;

namespace Corral.Client;

/// <summary>
/// The server answered with an error: its ProblemDetails, with Corral's machine-readable <see cref="Code"/>.
/// Subclasses group the statuses a caller handles differently; <see cref="Code"/> is the precise reason.
/// </summary>
public class CorralApiException : CorralException
{
    /// <summary>An error answer.</summary>
    /// <param name="problem">The answer.</param>
    public CorralApiException(CorralProblem problem)
        : base(Describe(problem))
    {
        Problem = problem;
    }

    /// <summary>The whole answer.</summary>
    public CorralProblem Problem { get; }

    /// <summary>The HTTP status.</summary>
    public HttpStatusCode StatusCode => Problem.Status;

    /// <summary>Corral's reason, e.g. <c>busy</c> or <c>invalid_request</c> (<see cref="CorralErrorCodes"/>); <c>null</c> when the body was not Corral's.</summary>
    public string? Code => Problem.Code;

    /// <summary>The fields that were wrong (for <c>invalid_request</c>); empty otherwise.</summary>
    public IReadOnlyList<CorralFieldError> Errors => Problem.Errors;

    /// <summary>How long the server asked to wait before trying again (<c>Retry-After</c>), when it said.</summary>
    public TimeSpan? RetryAfter => Problem.RetryAfter;

    private static string Describe(CorralProblem p)
    {
        string head = $"{(int)p.Status} {p.Code ?? p.Status.ToString()}";
        string text = p.Detail ?? p.Title ?? "";
        if (p.Errors.Count > 0 && p.Detail is null)
            text = string.Join("; ", p.Errors.Select(e => $"{e.Field}: {e.Message}"));
        return text.Length == 0 ? $"Corral answered {head}." : $"Corral answered {head}: {text}";
    }
}
