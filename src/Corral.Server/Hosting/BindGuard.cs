using Corral.Server.Api;
using Microsoft.AspNetCore.Http;

namespace Corral.Server.Hosting;

/// <summary>
/// Refuses to serve until the addresses the server really bound are known to be safe: without a token, only loopback.
/// Whatever configured them (<c>--urls</c>, <c>Kestrel:Endpoints</c> in any configuration source), a public address
/// without a token stops the server (exit code 2) before any request is answered.
/// </summary>
internal sealed class BindGuard(bool hasToken)
{
    private volatile bool _verified;

    /// <summary>Why the server must not serve, once <see cref="Check"/> found out.</summary>
    public string? Violation { get; private set; }

    public void Check(IReadOnlyList<string> addresses)
    {
        if (!hasToken && CorralServer.NonLoopback(string.Join(';', addresses)) is { } exposed)
        {
            Violation = $"refusing to serve on '{exposed}' without a token: pass --token-file (or --token, or set {CorralServer.TokenVariable}), or bind to 127.0.0.1 only.";
            return;
        }

        if (addresses.Count == 0)
        {
            Violation = "the server bound no address.";
            return;
        }

        _verified = true;
    }

    public async Task Gate(HttpContext context, RequestDelegate next)
    {
        if (_verified)
        {
            await next(context);
            return;
        }

        await Problems.Problem(context, 503, "starting", "Not serving", Violation ?? "The server is starting.").ExecuteAsync(context);
    }
}
