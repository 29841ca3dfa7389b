using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Corral.Server.Dashboard;

/// <summary>
/// The dashboard at <c>/</c> (the page) and <c>/ui/…</c> (its scripts and styles). These load without the token: the
/// page holds no data and asks for the token itself; every request it makes for data goes to the API, which needs
/// the token as always. Served with a strict content security policy: the page runs only its own scripts.
/// </summary>
internal static class DashboardEndpoints
{
    /// <summary>The prefix of the dashboard's files.</summary>
    public const string AssetsPath = "/ui";

    /// <summary>
    /// Only this origin's own files run and connect; no inline script or style, no frames, no plug-ins. Styles set
    /// through the DOM (<c>element.style</c>) are not inline styles and stay allowed.
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    /// <summary>Whether a path is one of the dashboard's own files (served without the token).</summary>
    public static bool IsPublic(PathString path) => path == "/" || path.StartsWithSegments(AssetsPath);

    /// <summary>Registers the embedded files.</summary>
    public static IServiceCollection AddDashboard(this IServiceCollection services) => services.AddSingleton(_ => DashboardAssets.Load());

    /// <summary>Maps <c>/</c> and <c>/ui/{path}</c>.</summary>
    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder routes)
    {
        routes.MapGet("/", (HttpContext context, DashboardAssets assets) => Serve(context, assets.Find("index.html"))).ExcludeFromDescription();
        routes.MapGet(AssetsPath + "/{**path}", (HttpContext context, DashboardAssets assets, string? path) => Serve(context, path is null ? null : assets.Find("ui/" + path)))
            .ExcludeFromDescription();
        return routes;
    }

    private static IResult Serve(HttpContext context, DashboardAsset? asset)
    {
        if (asset is null)
            return TypedResults.NotFound();
        var headers = context.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.XFrameOptions = "DENY";
        // Revalidated on every load (a new server version is seen at once), answered with 304 while unchanged.
        headers.CacheControl = "no-cache";
        headers.ETag = asset.ETag;
        if (context.Request.Headers.IfNoneMatch.Contains(asset.ETag))
            return TypedResults.StatusCode(StatusCodes.Status304NotModified);
        return TypedResults.Bytes(asset.Content, asset.ContentType);
    }
}
