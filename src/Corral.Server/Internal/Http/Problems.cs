using Corral.Server.Internal.Tasks;
using Microsoft.AspNetCore.Http;

namespace Corral.Server.Internal.Http;

/// <summary>Every refusal as RFC 9457 ProblemDetails, with a machine-readable <c>code</c>.</summary>
internal static class Problems
{
    public static IResult ToResult(this ApiProblem problem, HttpContext context)
    {
        if (problem.RetryAfter is { } seconds)
            context.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var extensions = new Dictionary<string, object?> { ["code"] = problem.Code };
        if (problem.Errors is { Count: > 0 } errors)
            extensions["errors"] = errors;
        return Results.Problem(problem.Detail, statusCode: problem.Status, title: problem.Title, extensions: extensions);
    }

    public static IResult NotFound(HttpContext context, string id) =>
        new ApiProblem(404, "not_found", "Task not found", $"No task '{id}'.").ToResult(context);

    public static IResult Invalid(HttpContext context, string detail) =>
        new ApiProblem(400, "invalid_request", "Invalid request", detail, null, [detail]).ToResult(context);
}
