using System.Text.Json;
using Corral.Server.Hosting;
using Corral.Server.Internal;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Streaming;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Corral.Server.Api;

/// <summary><c>/v1/events</c> (every task as it changes, live) and <c>/v1/stats</c> (how many tasks in each status): what a dashboard watches.</summary>
public static class FeedEndpoints
{
    /// <summary>Maps the feed endpoints.</summary>
    public static IEndpointRouteBuilder MapFeedEndpoints(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/v1/events", EventsAsync).WithTags("Feed").Produces(StatusCodes.Status200OK, contentType: "text/event-stream")
            .WithSummary("Server-sent events: task.accepted, task.updated, task.started, task.ended with a summary of the task; live only, no replay.");
        routes.MapMethods("/v1/stats", HealthEndpoints.GetOrHead, StatsAsync).WithTags("Feed").Produces<TaskStats>().WithSummary("How many tasks are in each status.");
        return routes;
    }

    private static async Task<IResult> StatsAsync(HttpContext context, ITaskStore store) =>
        TypedResults.Json(new TaskStats(await store.CountByStatusAsync(context.RequestAborted)), ApiJson.Options);

    private static async Task EventsAsync(HttpContext context, TaskFeed feed, IOptions<CorralOptions> options)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        using var subscription = feed.Subscribe();
        var keepAlive = TimeSpan.FromSeconds(options.Value.KeepAliveSeconds);
        var ct = context.RequestAborted;
        try
        {
            await response.Body.FlushAsync(ct);
            while (!ct.IsCancellationRequested)
            {
                using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
                idle.CancelAfter(keepAlive);
                bool more;
                try
                {
                    more = await subscription.Items.WaitToReadAsync(idle.Token);
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    await response.WriteAsync(": keep-alive\n\n", ct);
                    await response.Body.FlushAsync(ct);
                    continue;
                }

                if (!more)
                    return;
                while (subscription.Items.TryRead(out var item))
                    await response.WriteAsync($"event: {item.Name}\ndata: {JsonSerializer.Serialize(item.Task, ApiJson.Options)}\n\n", ct);
                await response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }
}
