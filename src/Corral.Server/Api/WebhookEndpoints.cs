using Corral.Server.Internal;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Webhooks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;

namespace Corral.Server.Api;

/// <summary><c>/v1/tasks/{id}/webhooks</c>: a task's webhook deliveries and where each is (never their bodies).</summary>
public static class WebhookEndpoints
{
    /// <summary>Maps the webhook endpoints.</summary>
    public static IEndpointRouteBuilder MapWebhookEndpoints(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/v1/tasks/{id}/webhooks", ListAsync).WithTags("Tasks")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .WithSummary("The task's webhook deliveries: id (webhook-id), url, event, state, attempts, last status and error, next attempt, delivery time.");
        return routes;
    }

    private static async Task<Results<JsonHttpResult<WebhookDeliveries>, ProblemHttpResult>> ListAsync(HttpContext context, Scheduler scheduler, IWebhookStore store, string id)
    {
        if (await scheduler.GetAsync(id, context.RequestAborted) is null)
            return Problems.NotFound(context, id);
        var items = await store.ListAsync(id, context.RequestAborted);
        return TypedResults.Json(new WebhookDeliveries([.. items]), ApiJson.Options);
    }
}
