namespace Corral.Server.Hosting;

/// <summary>What <c>corral serve</c> passes on its command line. A <c>null</c> falls back to configuration, then to the default.</summary>
public sealed record ServerOptions
{
    /// <summary>The default listen address.</summary>
    public const string DefaultUrls = "http://127.0.0.1:8080";

    /// <summary>The default data directory (relative to the current directory).</summary>
    public const string DefaultDataDirectory = "data";

    /// <summary>Where to listen, e.g. <c>http://127.0.0.1:8080</c> (several separated by ';'). Default: <see cref="DefaultUrls"/>.</summary>
    public string? Urls { get; init; }

    /// <summary>Where the task database, logs and workspaces live. Default: <c>./data</c>.</summary>
    public string? DataDirectory { get; init; }

    /// <summary>
    /// The bearer token every request must carry (except <c>/healthz</c> and <c>/readyz</c>). Falls back to the
    /// <c>CORRAL_TOKEN</c> environment variable. Required to listen on anything but a loopback address.
    /// </summary>
    public string? Token { get; init; }

    /// <summary>A file whose content (trimmed) is the token: unlike <see cref="Token"/>, it does not show in <c>ps</c>.</summary>
    public string? TokenFile { get; init; }

    /// <summary>The connection string of a PostgreSQL shared by a fleet of nodes (<c>--postgres</c>); without it, SQLite in the data directory.</summary>
    public string? Postgres { get; init; }

    /// <summary>This node's name in the fleet (<c>--node-id</c>).</summary>
    public string? NodeId { get; init; }
}
