using Corral.Agents.ClaudeCode;
using Corral.Server.Hosting;
using Corral.Server.Internal.Http;
using Corral.Server.Internal.Tasks;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Corral.Server.Api;

/// <summary><c>/healthz</c> (the process answers) and <c>/readyz</c> (it can run Claude Code tasks now).</summary>
public static class HealthEndpoints
{
    /// <summary>Maps the health endpoints.</summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/healthz", () => Results.Json(new { status = "ok" })).WithTags("Health").WithSummary("Liveness: always 200 while the process is up.");
        routes.MapGet("/readyz", (HttpContext context, TaskManager manager, IOptions<CorralOptions> options) =>
        {
            var (ready, reason) = manager.Availability(ClaudeCodeAdapter.AgentName);
            if (!ready && options.Value.ClaudeCode.Enabled is false && !manager.Draining)
                (ready, reason) = manager.Availability("command");
            return ready
                ? Results.Json(new { status = "ready" })
                : new ApiProblem(503, "not_ready", "Not ready", reason, options.Value.RetryAfterSeconds).ToResult(context);
        }).WithTags("Health").WithSummary("Readiness: 503 with a reason when the agent CLI is missing or the server is draining.");
        return routes;
    }
}
