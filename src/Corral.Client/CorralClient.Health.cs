using System.Net;
using System.Text.Json;
using Corral.Client.Internal;

namespace Corral.Client;

public sealed partial class CorralClient
{
    /// <summary>Liveness (<c>GET /healthz</c>, no token needed): whether the server answers at all.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns><c>true</c> when it answered 200; <c>false</c> for any other answer or none (also while the circuit is open). Not retried.</returns>
    public async Task<bool> IsAliveAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var request = Request(HttpMethod.Get, "healthz");
            request.Options.Set(CallOptions.NoRetry, true);
            using var response = await SendAsync(request, cancellationToken).ConfigureAwait(false);
            return response.StatusCode == HttpStatusCode.OK;
        }
        catch (CorralUnreachableException)
        {
            return false;
        }
    }

    /// <summary>Readiness (<c>GET /readyz</c>, no token needed): whether the server can take tasks now, and which agents can run.</summary>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The readiness; not ready is an answer, not an exception.</returns>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task<CorralReadiness> GetReadinessAsync(CancellationToken cancellationToken = default)
    {
        using var response = await SendAsync(Request(HttpMethod.Get, "readyz"), cancellationToken).ConfigureAwait(false);
        if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable))
            throw Problems.Exception(await Problems.ReadAsync(response, cancellationToken).ConfigureAwait(false));
        var body = await ReadJsonAsync(response, cancellationToken).ConfigureAwait(false);
        var agents = new List<AgentAvailability>();
        if (body.TryGetProperty("agents", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in list.EnumerateArray())
            {
                agents.Add(new AgentAvailability(
                    a.TryGetProperty("agent", out var name) ? name.GetString() ?? "" : "",
                    a.TryGetProperty("available", out var available) && available.ValueKind == JsonValueKind.True,
                    a.TryGetProperty("reason", out var reason) && reason.ValueKind == JsonValueKind.String ? reason.GetString() : null));
            }
        }

        string? detail = body.TryGetProperty("detail", out var d) && d.ValueKind == JsonValueKind.String ? d.GetString() : null;
        return new CorralReadiness(response.StatusCode == HttpStatusCode.OK, detail, agents,
            Problems.RetryAfter(response.Headers.RetryAfter, DateTimeOffset.UtcNow));
    }
}
