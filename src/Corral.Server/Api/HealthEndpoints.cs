using Corral.Server.Hosting;
using Corral.Server.Internal.Agents;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Corral.Server.Api;

/// <summary><c>/healthz</c> (the process answers) and <c>/readyz</c> (it can take tasks now, and with which agents).</summary>
public static class HealthEndpoints
{
    /// <summary>Maps the health endpoints.</summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder routes)
    {
        // HEAD too: load balancers and uptime checks probe with it (Kestrel sends the headers without the body).
        routes.MapMethods("/healthz", GetOrHead, () => TypedResults.Json(new { status = "ok" })).WithTags("Health").WithSummary("Liveness: always 200 while the process is up.");
        routes.MapMethods("/readyz", GetOrHead, Ready).WithTags("Health")
            .WithSummary("Readiness: 200 while at least one agent can take tasks (each agent's availability listed); 503 with a reason otherwise.");
        return routes;
    }

    /// <summary>The methods of a probe: GET, and HEAD for checks that want only the status.</summary>
    internal static readonly string[] GetOrHead = [HttpMethods.Get, HttpMethods.Head];

    private static IResult Ready(HttpContext context, AgentCatalog catalog, Scheduler scheduler, StorageGuard storage, IOptions<CorralOptions> options)
    {
        var agents = catalog.Names.Select(catalog.Availability).ToList();
        var listed = agents.Select(a => new { agent = a.Agent, available = a.Available, reason = a.Reason }).ToArray();
        var fleet = context.RequestServices.GetService(typeof(Internal.Fleet.FleetNode)) as Internal.Fleet.FleetNode;
        string? reason = scheduler.Draining ? "The server is stopping."
            : storage.IsFull ? "The disk of the data directory is full."
            : fleet is { Reachable: false } ? "The fleet's task database cannot be reached: this node cannot renew its leases or take tasks."
            : agents.Any(a => a.Available) ? null
            : "No agent can take tasks: " + string.Join(" ", agents.Select(a => a.Reason));
        if (reason is null)
            return fleet is null ? TypedResults.Json(new { status = "ready", agents = listed }) : TypedResults.Json(new { status = "ready", node = fleet.Node, agents = listed });
        context.Response.Headers.RetryAfter = options.Value.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return TypedResults.Json(new { status = "not_ready", code = "not_ready", detail = reason, agents = listed }, statusCode: 503);
    }
}
