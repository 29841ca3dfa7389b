using System.Globalization;
using Corral.Server.Internal.Admission;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace Corral.Server.Api;

/// <summary>
/// Every refusal as RFC 9457 ProblemDetails with a machine-readable <c>code</c> (and <c>errors</c>, one per field):
/// the only place where a refusal becomes an HTTP status.
/// </summary>
internal static class Problems
{
    public static ProblemHttpResult From(Refusal refusal, HttpContext context, int retryAfterSeconds)
    {
        var (status, code, title, retry) = refusal.Code switch
        {
            RefusalCode.InvalidRequest => (400, "invalid_request", "Invalid request", false),
            RefusalCode.AgentNotAvailable => (503, "agent_not_available", "Agent not available", false), // a missing CLI does not appear by waiting
            RefusalCode.Draining => (503, "draining", "The server is stopping", true),
            RefusalCode.Busy => (429, "busy", "Too many tasks", true),
            RefusalCode.SessionBusy => (409, "session_busy", "Session busy", false),
            RefusalCode.IdempotencyConflict => (409, "idempotency_conflict", "Idempotency key reused", false),
            RefusalCode.StorageFull => (507, "storage_full", "Storage full", false),
            RefusalCode.StorageUnavailable => (503, "storage_unavailable", "Storage unavailable", true),
            RefusalCode.NotFound => (404, "not_found", "Task not found", false),
            RefusalCode.TaskActive => (409, "task_active", "Task still active", false),
            _ => (500, "internal_error", "Internal error", false),
        };
        return Problem(context, status, code, title, refusal.Message, refusal.Errors, retry ? retryAfterSeconds : null);
    }

    public static ProblemHttpResult NotFound(HttpContext context, string id) =>
        Problem(context, 404, "not_found", "Task not found", $"No task '{id}'.");

    public static ProblemHttpResult Invalid(HttpContext context, string field, string message) =>
        Problem(context, 400, "invalid_request", "Invalid request", new FieldError(field, message).ToString(), [new FieldError(field, message)]);

    public static ProblemHttpResult Problem(HttpContext context, int status, string code, string title, string? detail,
        IReadOnlyList<FieldError>? errors = null, int? retryAfterSeconds = null)
    {
        if (retryAfterSeconds is { } seconds)
            context.Response.Headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
        var problem = new ProblemDetails { Status = status, Title = title, Detail = detail };
        problem.Extensions["code"] = code;
        if (errors is { Count: > 0 })
            problem.Extensions["errors"] = errors.Select(e => new { field = e.Field, message = e.Message }).ToArray();
        return TypedResults.Problem(problem);
    }

    /// <summary>What a client that sent anything but JSON is told, by the framework's 415 and the endpoint's.</summary>
    public const string UnsupportedMediaType = "Send application/json in UTF-8 (RFC 8259).";

    /// <summary>
    /// Gives every problem, also those the framework writes (no route, a wrong method or media type), a <c>code</c>, a
    /// <c>detail</c> and a <c>type</c>: a client handles them all alike.
    /// </summary>
    public static void Complete(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var request = context.HttpContext.Request;
        problem.Extensions.TryAdd("code", problem.Status switch
        {
            404 => "not_found",
            405 => "method_not_allowed",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            >= 500 => "internal_error",
            _ => "invalid_request",
        });
        problem.Detail ??= problem.Status switch
        {
            404 => $"Nothing is at {request.Path}.",
            405 => $"{request.Path} does not take {request.Method}.",
            415 => UnsupportedMediaType,
            _ => null,
        };
        // The framework knows the types of RFC 9110's codes; these two are defined elsewhere.
        problem.Type ??= problem.Status switch
        {
            429 => "https://www.rfc-editor.org/rfc/rfc6585#section-4",
            507 => "https://www.rfc-editor.org/rfc/rfc4918#section-11.5",
            _ => null,
        };
    }
}

/// <summary>
/// A database that cannot be reached while a request reads or writes it (the shared PostgreSQL of a fleet restarting,
/// say) is a 503 <c>storage_unavailable</c> with <c>Retry-After</c>, never a 500: the request may simply be sent again.
/// </summary>
internal sealed class StoreUnavailableHandler(Microsoft.Extensions.Options.IOptions<Hosting.CorralOptions> options) : Microsoft.AspNetCore.Diagnostics.IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext context, Exception exception, CancellationToken cancellationToken)
    {
        if (exception is not (Internal.Storage.StoreException or Npgsql.NpgsqlException or TimeoutException) || context.Response.HasStarted)
            return false;
        await Problems.Problem(context, 503, "storage_unavailable", "Storage unavailable", "The task database could not be reached: " + exception.Message,
            retryAfterSeconds: options.Value.RetryAfterSeconds).ExecuteAsync(context);
        return true;
    }
}
