using System.Collections.Frozen;
using System.Reflection;
using System.Security.Cryptography;

namespace Corral.Server.Dashboard;

/// <summary>A file of the dashboard, as embedded in the server assembly.</summary>
/// <param name="Path">Its path under the dashboard's root, e.g. <c>ui/app.js</c>.</param>
/// <param name="Content">Its bytes.</param>
/// <param name="ContentType">Its media type.</param>
/// <param name="ETag">A strong entity tag from its content.</param>
internal sealed record DashboardAsset(string Path, byte[] Content, string ContentType, string ETag);

/// <summary>
/// The dashboard's files: plain HTML, CSS and JavaScript modules embedded in the assembly (<c>Dashboard/wwwroot</c>),
/// read once. Nothing is fetched from elsewhere and nothing is built at run time.
/// </summary>
internal sealed class DashboardAssets
{
    /// <summary>The prefix of the dashboard's embedded resources.</summary>
    public const string ResourcePrefix = "dashboard/";

    private readonly FrozenDictionary<string, DashboardAsset> _assets;

    private DashboardAssets(FrozenDictionary<string, DashboardAsset> assets) => _assets = assets;

    /// <summary>Every embedded file, by path.</summary>
    public IEnumerable<string> Paths => _assets.Keys;

    /// <summary>The files embedded in <paramref name="assembly"/> (the server's by default).</summary>
    public static DashboardAssets Load(Assembly? assembly = null)
    {
        assembly ??= typeof(DashboardAssets).Assembly;
        var assets = new Dictionary<string, DashboardAsset>(StringComparer.Ordinal);
        foreach (string name in assembly.GetManifestResourceNames())
        {
            if (!name.StartsWith(ResourcePrefix, StringComparison.Ordinal))
                continue;
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            byte[] content = copy.ToArray();
            string path = name[ResourcePrefix.Length..];
            string etag = "\"" + Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 12)) + "\"";
            assets[path] = new DashboardAsset(path, content, ContentType(path), etag);
        }

        return new DashboardAssets(assets.ToFrozenDictionary(StringComparer.Ordinal));
    }

    /// <summary>The file at <paramref name="path"/>, or <c>null</c>.</summary>
    public DashboardAsset? Find(string path) => _assets.GetValueOrDefault(path);

    /// <summary>The media type for a file name (only the kinds the dashboard ships).</summary>
    public static string ContentType(string path) => System.IO.Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".html" => "text/html; charset=utf-8",
        ".js" => "text/javascript; charset=utf-8",
        ".css" => "text/css; charset=utf-8",
        ".svg" => "image/svg+xml",
        ".png" => "image/png",
        ".json" => "application/json",
        _ => "application/octet-stream",
    };
}
