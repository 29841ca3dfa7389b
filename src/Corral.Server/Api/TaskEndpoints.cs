using System.Globalization;
using System.Text;
using System.Text.Json;
using Corral.Server.Hosting;
using Corral.Server.Internal;
using Corral.Server.Internal.Http;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Corral.Server.Api;

/// <summary><c>/v1/tasks</c>: create, read, list, follow, cancel, and the raw transcript.</summary>
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
            .ProducesProblem(StatusCodes.Status429TooManyRequests)
            .ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .WithSummary("Create a task; ?wait=SECONDS waits for the end and maps the outcome to the status code.");
        group.MapGet("/", List).Produces<TaskPage>().WithSummary("Tasks, newest first, filtered by status and session.");
        group.MapGet("/{id}", Get).Produces<TaskRecord>().ProducesProblem(StatusCodes.Status404NotFound).WithSummary("The task record.");
        group.MapPost("/{id}/cancel", Cancel).Produces<TaskRecord>(StatusCodes.Status202Accepted).Produces<TaskRecord>()
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("Cancel (idempotent): Claude gets an interrupt first, then the process ladder.");
        group.MapGet("/{id}/events", EventsAsync).Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("Server-sent events; replay from Last-Event-ID or ?after=N; task.end is last.");
        group.MapGet("/{id}/transcript", Transcript).Produces(StatusCodes.Status200OK, contentType: "application/x-ndjson")
            .ProducesProblem(StatusCodes.Status404NotFound).WithSummary("Everything the agent printed, as NDJSON.");
        return group;
    }

    private static async Task<IResult> CreateAsync(HttpContext context, TaskManager manager, IOptions<CorralOptions> options, double? wait)
    {
        if (wait is < 0 or double.NaN)
            return Problems.Invalid(context, "wait: must be a number of seconds, zero or more.");
        if (context.Request.ContentType is { } type && !type.StartsWith("application/json", StringComparison.OrdinalIgnoreCase))
            return new ApiProblem(415, "invalid_request", "Unsupported media type", "Send the task as application/json.").ToResult(context);

        CreateTaskRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<CreateTaskRequest>(context.Request.Body, ApiJson.Strict, context.RequestAborted);
        }
        catch (JsonException e)
        {
            return Problems.Invalid(context, "The body is not a valid task: " + e.Message);
        }

        if (body is null)
            return Problems.Invalid(context, "The body must be a JSON object.");

        var created = manager.Create(body);
        if (created.Problem is { } problem)
            return problem.ToResult(context);

        context.Response.Headers.Location = $"/v1/tasks/{created.Record!.Id}";
        var record = created.Record;
        if (wait is not { } seconds)
            return Results.Json(record, ApiJson.Options, statusCode: created.Existing ? 200 : 202);

        if (created.Runner is { } runner)
        {
            var limit = TimeSpan.FromSeconds(Math.Min(seconds, options.Value.MaxWaitSeconds));
            try
            {
                record = await runner.Finished.WaitAsync(limit, context.RequestAborted);
            }
            catch (TimeoutException)
            {
                record = runner.Record;
            }
        }

        return Results.Json(record, ApiJson.Options, statusCode: OutcomeStatus(record));
    }

    /// <summary>The HTTP status of <c>?wait=</c> for a record.</summary>
    internal static int OutcomeStatus(TaskRecord record) => record.Status switch
    {
        TaskState.Succeeded => 200,
        TaskState.Failed when record.Error?.Code == "spawn_failed" => 503,
        TaskState.Failed => 422,
        TaskState.TimedOut => 504,
        TaskState.Cancelled => 409,
        TaskState.Lost => 502,
        TaskState.Interrupted => 503,
        _ => 202,
    };

    private static IResult Get(HttpContext context, TaskManager manager, string id) =>
        manager.Get(id) is { } record ? Results.Json(record, ApiJson.Options) : Problems.NotFound(context, id);

    private static IResult List(HttpContext context, TaskManager manager, string? status, string? sessionId, int? limit, string? cursor)
    {
        TaskState? state = null;
        if (status is not null)
        {
            if (!Enum.TryParse<TaskState>(status, ignoreCase: true, out var s) || !Enum.IsDefined(s) || int.TryParse(status, out _))
                return Problems.Invalid(context, $"status: unknown status '{status}'.");
            state = s;
        }

        if (limit is < 1 or > 500)
            return Problems.Invalid(context, "limit: 1 to 500.");
        long? before = null;
        if (cursor is not null)
        {
            if (!long.TryParse(cursor, NumberStyles.None, CultureInfo.InvariantCulture, out long c))
                return Problems.Invalid(context, "cursor: not a cursor from a previous page.");
            before = c;
        }

        int take = limit ?? 50;
        var (items, last) = manager.List(state, sessionId, take, before);
        string? next = items.Count == take && last is { } l ? l.ToString(CultureInfo.InvariantCulture) : null;
        return Results.Json(new TaskPage(items, next), ApiJson.Options);
    }

    private static IResult Cancel(HttpContext context, TaskManager manager, string id)
    {
        if (manager.Cancel(id) is not { } record)
            return Problems.NotFound(context, id);
        context.Response.Headers.Location = $"/v1/tasks/{id}";
        return Results.Json(record, ApiJson.Options, statusCode: record.IsTerminal ? 200 : 202);
    }

    private static IResult Transcript(HttpContext context, TaskManager manager, string id)
    {
        if (manager.Get(id) is null)
            return Problems.NotFound(context, id);
        string path = manager.Paths.TranscriptFile(id);
        if (!File.Exists(path))
            return Results.Text("", "application/x-ndjson");
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16, FileOptions.Asynchronous);
        return Results.Stream(stream, "application/x-ndjson");
    }

    private static async Task EventsAsync(HttpContext context, TaskManager manager, IOptions<CorralOptions> options, string id, long? after)
    {
        if (manager.Get(id) is not { } initial)
        {
            await Problems.NotFound(context, id).ExecuteAsync(context);
            return;
        }

        long from = after ?? 0;
        if (context.Request.Headers["Last-Event-ID"].FirstOrDefault() is { Length: > 0 } lastId)
        {
            if (!long.TryParse(lastId, NumberStyles.None, CultureInfo.InvariantCulture, out from))
            {
                await Problems.Invalid(context, "Last-Event-ID: not an event id of this stream.").ExecuteAsync(context);
                return;
            }
        }

        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.Body.FlushAsync(context.RequestAborted);

        var ct = context.RequestAborted;
        var keepAlive = TimeSpan.FromSeconds(options.Value.KeepAliveSeconds);
        using var reader = new EventLogReader(manager.Paths.EventsFile(id), from);
        try
        {
            while (!ct.IsCancellationRequested)
            {
                // Take the wake-up signal before reading, so an append between the read and the wait is not missed.
                var runner = manager.Active(id);
                var changed = runner?.Log.Changed;
                foreach (var e in reader.ReadAvailable())
                {
                    await WriteEventAsync(response, e, ct);
                    if (e.Name == "task.end")
                        return;
                }

                await response.Body.FlushAsync(ct);
                if (runner is null)
                {
                    // Nothing is running it any more, and the log holds everything: one last read, then end.
                    foreach (var e in reader.ReadAvailable())
                    {
                        await WriteEventAsync(response, e, ct);
                        if (e.Name == "task.end")
                            return;
                    }

                    var record = manager.Get(id) ?? initial;
                    await WriteEventAsync(response, new StoredEvent(0, "task.end",
                        JsonSerializer.Serialize(new { status = record.Status, error = record.Error }, ApiJson.Options)), ct, withId: false);
                    return;
                }

                if (await Task.WhenAny(changed!, Task.Delay(keepAlive, ct)) != changed)
                {
                    await response.WriteAsync(": keep-alive\n\n", ct);
                    await response.Body.FlushAsync(ct);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // The client went away; it can come back with Last-Event-ID.
        }
    }

    private static async Task WriteEventAsync(HttpResponse response, StoredEvent e, CancellationToken ct, bool withId = true)
    {
        var sb = new StringBuilder(e.Data.Length + 64);
        if (withId)
            sb.Append("id: ").Append(e.Id.ToString(CultureInfo.InvariantCulture)).Append('\n');
        sb.Append("event: ").Append(e.Name).Append('\n');
        sb.Append("data: ").Append(e.Data).Append("\n\n");
        await response.WriteAsync(sb.ToString(), ct);
    }
}
