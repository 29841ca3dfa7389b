using System.Globalization;
using System.Text.Json;
using Corral.Server.Hosting;
using Corral.Server.Internal;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Corral.Server.Internal.Streaming;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Corral.Server.Api;

/// <summary><c>/v1/tasks</c>: create, read, list, follow, cancel, delete, and the task's transcript and raw output.</summary>
public static class TaskEndpoints
{
    /// <summary>Maps the task endpoints.</summary>
    public static RouteGroupBuilder MapTaskEndpoints(this IEndpointRouteBuilder routes)
    {
        var group = routes.MapGroup("/v1/tasks").WithTags("Tasks");
        group.MapPost("/", CreateAsync)
            .Accepts<CreateTaskRequest>("application/json")
            .Produces<TaskRecord>(StatusCodes.Status202Accepted)
            .Produces<TaskRecord>(StatusCodes.Status200OK)
            .ProducesProblem(StatusCodes.Status400BadRequest)
            .ProducesProblem(StatusCodes.Status409Conflict)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge)
            .ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .ProducesProblem(StatusCodes.Status507InsufficientStorage)
            .WithSummary("Create a task; ?wait=SECONDS waits for the end and maps the outcome to the status code.");
        group.MapGet("/", ListAsync).WithSummary("Tasks, newest first, filtered by status, session, agent, node (in a fleet) and a text (?q=) found in the task.");
        group.MapGet("/{id}", GetAsync).WithSummary("The task record.");
        group.MapDelete("/{id}", DeleteAsync).WithSummary("Delete a finished task with its files (409 while it is queued or running).");
        group.MapPost("/{id}/cancel", CancelAsync).WithSummary("Cancel (idempotent): Claude gets an interrupt first, then the process ladder.");
        group.MapGet("/{id}/events", EventsAsync).Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("Server-sent events; replay from Last-Event-ID or ?after=N; task.end is last.");
        group.MapGet("/{id}/transcript", TranscriptAsync).Produces(StatusCodes.Status200OK, contentType: "application/x-ndjson")
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("Everything the agent printed, as NDJSON.");
        group.MapGet("/{id}/processes", ProcessesAsync).WithSummary("The task's live processes now (pid, parent, command, state, RSS, CPU, how found); empty once it has ended.");
        group.MapGet("/{id}/output", OutputAsync).Produces(StatusCodes.Status200OK, contentType: "application/octet-stream")
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("The exact bytes the agent wrote to stdout or stderr (?stream=), up to the task's output cap.");
        return group;
    }

    /// <summary>What the task handlers use.</summary>
    internal readonly record struct TaskServices(Scheduler Scheduler, Admission Admission, EventStream Events, Transcript Transcript,
        ServerPaths Paths, IOptions<CorralOptions> Options, TimeProvider Time, TaskObservers Observers);

    private static async Task<IResult> CreateAsync(HttpContext context, [AsParameters] TaskServices services, string? wait)
    {
        var options = services.Options.Value;
        double? seconds = null;
        if (wait is not null)
        {
            if (!double.TryParse(wait, NumberStyles.Float, CultureInfo.InvariantCulture, out double w) || !double.IsFinite(w) || w < 0)
                return Problems.Invalid(context, "wait", "must be a number of seconds, zero or more.");
            seconds = Math.Min(w, options.MaxWaitSeconds);
        }

        if (context.Request.ContentType is { } type && !IsJson(type))
            return Problems.Problem(context, 415, "unsupported_media_type", "Unsupported Media Type", Problems.UnsupportedMediaType);

        CreateTaskRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<CreateTaskRequest>(context.Request.Body, ApiJson.Strict, context.RequestAborted);
        }
        catch (JsonException e)
        {
            return Problems.Invalid(context, UnknownField(e) ?? JsonField(e.Path), JsonProblem(e));
        }
        catch (ArgumentException)
        {
            // A free-form object (metadata, mcpServers) that names a property twice: its JsonObject refuses the second.
            return Problems.Invalid(context, "", "An object in the body names the same property twice.");
        }
        catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return Problems.Problem(context, 413, "payload_too_large", "Request body too large", $"The body is larger than {options.MaxRequestBodyBytes} bytes (Corral:MaxRequestBodyBytes).");
        }
        catch (BadHttpRequestException e)
        {
            // The client's framing, not the server: a body that arrives too slowly (408), a bad chunk or one cut short (400).
            return Problems.Problem(context, e.StatusCode, e.StatusCode == StatusCodes.Status408RequestTimeout ? "request_timeout" : "bad_request",
                e.StatusCode == StatusCodes.Status408RequestTimeout ? "Request timeout" : "Bad request", e.Message);
        }

        if (body is null)
            return Problems.Invalid(context, "", "The body must be a JSON object.");

        var (plan, refusal) = services.Admission.Plan(body, Admission.NewId());
        var submission = refusal is null ? await services.Scheduler.SubmitAsync(plan!, acknowledgeAtOnce: seconds is null, context.RequestAborted) : null;
        if ((refusal ?? submission!.Refusal) is { } refused)
        {
            services.Observers.Refused(body.Agent, refused.Code);
            return Problems.From(refused, context, options.RetryAfterSeconds);
        }

        var record = submission!.Record!;
        context.Response.Headers.Location = $"/v1/tasks/{record.Id}";
        if (seconds is not { } limit)
            return new RecordResult(record, submission.Existing ? 200 : 202);
        (record, bool ended) = await services.Scheduler.WaitAsync(submission, TimeSpan.FromSeconds(limit), context.RequestAborted);
        // The wait ends first: the client learns of a task that has not ended, so its row must be on disk. When it cannot
        // be put there soon, the client hears that rather than waiting on past its own deadline.
        if (!ended && submission.Task is { } task && !await services.Scheduler.MakeDurableAsync(task, DurableGrace))
            return Problems.Problem(context, 503, "storage_unavailable", "Storage unavailable",
                $"Task {record.Id} runs, but its record cannot be written to disk now (the database is locked or the disk is full), so it may not outlive a crash of the server. GET /v1/tasks/{record.Id} tells how it goes.");

        return new RecordResult(record, OutcomeStatus(record));
    }

    /// <summary>How long past its <c>?wait</c> an answer waits for the task's row to be durable.</summary>
    internal static readonly TimeSpan DurableGrace = TimeSpan.FromSeconds(5);

    /// <summary>Whether a content type is JSON in UTF-8, the only encoding JSON has (a charset of UTF-16 would be read wrongly).</summary>
    internal static bool IsJson(string contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)
        && media.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
        && (!media.Charset.HasValue || Microsoft.Net.Http.Headers.HeaderUtilities.RemoveQuotes(media.Charset) is var charset
            && (charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase)));

    /// <summary>The HTTP status of <c>?wait=</c> for a record.</summary>
    internal static int OutcomeStatus(TaskRecord record) => record.Status switch
    {
        TaskState.Succeeded => 200,
        TaskState.Failed when record.Error?.Code == "storage_full" => 507,
        TaskState.Failed => 422,
        TaskState.TimedOut => 504,
        TaskState.Cancelled => 409,
        TaskState.Lost => 502,
        TaskState.Interrupted => 503,
        _ => 202,
    };

    private static async Task<Results<JsonHttpResult<TaskRecord>, ProblemHttpResult>> GetAsync(HttpContext context, [AsParameters] TaskServices services, string id) =>
        await services.Scheduler.GetAsync(id, context.RequestAborted) is { } record
            ? TypedResults.Json(record, ApiJson.Options)
            : Problems.NotFound(context, id);

    private static async Task<Results<JsonHttpResult<TaskPage>, ProblemHttpResult>> ListAsync(HttpContext context, [AsParameters] TaskServices services,
        string? status, string? sessionId, string? limit, string? cursor, string? agent, string? node, string? q)
    {
        if (q is { Length: > 200 })
            return Problems.Invalid(context, "q", "at most 200 characters.");
        TaskState? state = null;
        if (status is not null)
        {
            // One name: Enum.TryParse reads "running,succeeded" as the two values OR-ed together, another status.
            if (!status.All(char.IsAsciiLetter) || !Enum.TryParse<TaskState>(status, ignoreCase: true, out var s) || !Enum.IsDefined(s))
                return Problems.Invalid(context, "status", $"unknown status '{status}'.");
            state = s;
        }

        int take = 50;
        if (limit is not null && (!int.TryParse(limit, NumberStyles.None, CultureInfo.InvariantCulture, out take) || take is < 1 or > 500))
            return Problems.Invalid(context, "limit", "1 to 500.");
        long? before = null;
        if (cursor is not null)
        {
            if (!long.TryParse(cursor, NumberStyles.None, CultureInfo.InvariantCulture, out long c))
                return Problems.Invalid(context, "cursor", "not a cursor from a previous page.");
            before = c;
        }

        var page = await services.Scheduler.ListAsync(new TaskQuery(state, sessionId, take, before, agent, q is { Length: > 0 } ? q : null, node is { Length: > 0 } ? node : null), context.RequestAborted);
        string? next = page.Next?.ToString(CultureInfo.InvariantCulture);
        return TypedResults.Json(new TaskPage([.. page.Items], next), ApiJson.Options);
    }

    private static async Task<Results<JsonHttpResult<TaskRecord>, ProblemHttpResult>> CancelAsync(HttpContext context, [AsParameters] TaskServices services, string id)
    {
        if (await services.Scheduler.CancelAsync(id, context.RequestAborted) is not { } record)
            return Problems.NotFound(context, id);
        context.Response.Headers.Location = $"/v1/tasks/{id}";
        return TypedResults.Json(record, ApiJson.Options, statusCode: record.IsTerminal ? 200 : 202);
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(HttpContext context, [AsParameters] TaskServices services, string id) =>
        await services.Scheduler.DeleteAsync(id, context.RequestAborted) is { } refusal
            ? Problems.From(refusal, context, services.Options.Value.RetryAfterSeconds)
            : TypedResults.NoContent();

    private static async Task TranscriptAsync(HttpContext context, [AsParameters] TaskServices services, string id)
    {
        if (await services.Scheduler.GetAsync(id, context.RequestAborted) is null)
        {
            await Problems.NotFound(context, id).ExecuteAsync(context);
            return;
        }

        context.Response.ContentType = "application/x-ndjson";
        await services.Transcript.WriteAsync(context.Response.BodyWriter, id, context.RequestAborted);
    }

    private static async Task<Results<JsonHttpResult<ProcessLedger>, ProblemHttpResult>> ProcessesAsync(HttpContext context, [AsParameters] TaskServices services, string id) =>
        await services.Scheduler.ProcessesAsync(id, context.RequestAborted) is { } ledger
            ? TypedResults.Json(ledger, ApiJson.Options)
            : Problems.NotFound(context, id);

    private static async Task OutputAsync(HttpContext context, [AsParameters] TaskServices services, RawOutput raw, string id, string? stream)
    {
        var which = stream switch
        {
            null or "stdout" => Corral.Processes.OutputStream.StandardOutput,
            "stderr" => Corral.Processes.OutputStream.StandardError,
            _ => (Corral.Processes.OutputStream)0,
        };
        if (which == 0)
        {
            await Problems.Invalid(context, "stream", "stdout or stderr.").ExecuteAsync(context);
            return;
        }

        if (await services.Scheduler.GetAsync(id, context.RequestAborted) is null)
        {
            await Problems.NotFound(context, id).ExecuteAsync(context);
            return;
        }

        context.Response.ContentType = "application/octet-stream";
        await raw.WriteAsync(context.Response.BodyWriter, id, which, context.RequestAborted);
    }

    private static async Task EventsAsync(HttpContext context, [AsParameters] TaskServices services, string id, string? after)
    {
        long from = 0;
        if (after is not null && !long.TryParse(after, NumberStyles.None, CultureInfo.InvariantCulture, out from))
        {
            await Problems.Invalid(context, "after", "not an event id of this stream.").ExecuteAsync(context);
            return;
        }

        if (context.Request.Headers["Last-Event-ID"].FirstOrDefault() is { Length: > 0 } lastId
            && !long.TryParse(lastId, NumberStyles.None, CultureInfo.InvariantCulture, out from))
        {
            await Problems.Invalid(context, "Last-Event-ID", "not an event id of this stream.").ExecuteAsync(context);
            return;
        }

        if (await services.Scheduler.GetAsync(id, context.RequestAborted) is null)
        {
            await Problems.NotFound(context, id).ExecuteAsync(context);
            return;
        }

        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        var options = services.Options.Value;
        try
        {
            await response.Body.FlushAsync(context.RequestAborted);
            await services.Events.WriteAsync(response.BodyWriter, id, from, TimeSpan.FromSeconds(options.KeepAliveSeconds),
                TimeSpan.FromSeconds(options.SlowClientSeconds), context.RequestAborted);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away; it can come back with Last-Event-ID.
        }
        catch (SlowClientException)
        {
            context.Abort();
        }
    }

    /// <summary>What is wrong with a body the serializer refused, in the API's words (not .NET's type names).</summary>
    private static string JsonProblem(JsonException e) => e.Message switch
    {
        // The reader cannot make a .NET string of it: bytes that are not UTF-8, or an escaped lone surrogate (\ud800).
        _ when e.InnerException is InvalidOperationException { Message: var inner }
            && (inner.Contains("UTF-8", StringComparison.Ordinal) || inner.Contains("UTF-16", StringComparison.Ordinal))
            => "is not valid text: JSON strings are UTF-8, and an escaped surrogate (\\uD800–\\uDFFF) must be half of a pair.",
        var m when m.Contains("could not be converted", StringComparison.Ordinal) => "has the wrong type (see the API's schema: /openapi/v1.json).",
        var m when m.StartsWith("Duplicate property", StringComparison.Ordinal) => "appears twice in the body.",
        var m when m.Contains("could not be mapped", StringComparison.Ordinal) => "is not a field of a task (a typo?).",
        _ => "the body is not valid JSON of a task: " + e.Message,
    };

    /// <summary>The name of a field that is not in the schema, from the serializer's message ("The JSON property 'x' could not be mapped…").</summary>
    private static string? UnknownField(JsonException e)
    {
        if (!e.Message.Contains("could not be mapped", StringComparison.Ordinal))
            return null;
        int open = e.Message.IndexOf('\'');
        int close = open < 0 ? -1 : e.Message.IndexOf('\'', open + 1);
        string name = close > open ? e.Message[(open + 1)..close] : "";
        // The serializer's path already ends at the unknown property; older ones stopped at its parent.
        string path = JsonField(e.Path);
        if (path == name || path.EndsWith("." + name, StringComparison.Ordinal))
            return path;
        return path.Length == 0 ? name : path + "." + name;
    }

    /// <summary>The API's field name for a JSON path from the serializer (<c>$.limits.timeoutSeconds</c> → <c>limits.timeoutSeconds</c>).</summary>
    private static string JsonField(string? path) => path is null or "$" ? "" : path.TrimStart('$', '.');
}
