using System.Net;
using System.Security.Cryptography;
using System.Text;
using Corral.Agents.ClaudeCode;
using Corral.Agents.Codex;
using Corral.Agents.Command;
using Corral.Agents.Gemini;
using Corral.Server.Api;
using Corral.Server.Dashboard;
using Corral.Server.Internal;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Fleet;
using Corral.Server.Internal.Storage.Postgres;
using Corral.Server.Internal.Agents;
using Corral.Server.Internal.Isolation;
using Corral.Server.Internal.Recovery;
using Corral.Server.Internal.Retention;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;
using Corral.Server.Internal.Storage.Sqlite;
using Corral.Server.Internal.Streaming;
using Corral.Server.Internal.Webhooks;
using Corral.Server.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Configuration;

namespace Corral.Server.Hosting;

/// <summary>Thrown when the server must not start as configured (e.g. a public address without a token).</summary>
public sealed class ServerConfigurationException(string message) : Exception(message);

/// <summary>The entry point of <c>corral serve</c>.</summary>
public static class CorralServer
{
    /// <summary>The environment variable read when <see cref="ServerOptions.Token"/> is not given.</summary>
    public const string TokenVariable = "CORRAL_TOKEN";

    /// <summary>
    /// Runs the server until <paramref name="cancellationToken"/> is cancelled (or SIGINT/SIGTERM), then drains: running
    /// tasks are stopped through the cancel ladder and recorded as <c>interrupted</c>. Returns the process exit code:
    /// 0 after a clean stop, 2 when the configuration is refused (message on stderr).
    /// </summary>
    /// <param name="options">What <c>corral serve</c> parsed: <c>--urls</c>, <c>--data</c>, <c>--token</c>.</param>
    /// <param name="args">More configuration as command-line pairs, e.g. <c>--Corral:MaxConcurrentTasks=8</c>; may be empty.</param>
    /// <param name="cancellationToken">Stops the server.</param>
    public static async Task<int> RunAsync(ServerOptions options, string[] args, CancellationToken cancellationToken = default)
    {
        WebApplication app;
        try
        {
            app = Build(options, args);
        }
        catch (ServerConfigurationException e)
        {
            await Console.Error.WriteLineAsync("corral serve: " + e.Message).ConfigureAwait(false);
            return 2;
        }

        await using (app.ConfigureAwait(false))
        {
            try
            {
                await app.StartAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ServerConfigurationException e)
            {
                await Console.Error.WriteLineAsync("corral serve: " + e.Message).ConfigureAwait(false);
                return 2;
            }

            var guard = app.Services.GetRequiredService<BindGuard>();
            if (guard.Violation is null)
            {
                foreach (string address in Addresses(app))
                    Console.WriteLine($"Corral listening on {address}");
            }

            try
            {
                await app.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                await app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            }

            if (guard.Violation is { } violation)
            {
                await Console.Error.WriteLineAsync("corral serve: " + violation).ConfigureAwait(false);
                return 2;
            }
        }

        return 0;
    }

    /// <summary>The addresses a started server listens on (with the real port when it was 0).</summary>
    public static IReadOnlyList<string> Addresses(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.ToList() ?? [];

    /// <summary>
    /// Builds the server without starting it (for hosts and tests). Throws <see cref="ServerConfigurationException"/>
    /// when it must not start, e.g. on a non-loopback address without a token.
    /// </summary>
    public static WebApplication Build(ServerOptions options, string[] args)
    {
        // Configuration is read once, at start. Watching it for changes would watch the content root recursively (the
        // working directory: under systemd, the data directory), so every task's directories would cost an inotify
        // watch and a wake-up of the watcher thread, until the kernel's watch limit.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false", .. args] });
        string urls = options.Urls ?? builder.Configuration["Corral:Urls"] ?? ServerOptions.DefaultUrls;
        string? token = options.Token ?? ReadTokenFile(options.TokenFile ?? builder.Configuration["Corral:TokenFile"])
            ?? builder.Configuration["Corral:Token"] ?? Environment.GetEnvironmentVariable(TokenVariable);
        if (token is { Length: 0 })
            token = null;
        string data = Path.GetFullPath(options.DataDirectory ?? builder.Configuration["Corral:DataDirectory"] ?? ServerOptions.DefaultDataDirectory);

        if (token is null && NonLoopback(urls) is { } exposed)
            throw new ServerConfigurationException($"refusing to listen on '{exposed}' without a token: pass --token or set {TokenVariable}, or bind to 127.0.0.1.");

        // Request-by-request framework logs are noise for an operator; configuration can still turn them back on.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        builder.WebHost.UseUrls(urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        var corral = builder.Configuration.GetSection(CorralOptions.Section).Get<CorralOptions>() ?? new CorralOptions();
        if (WebhookRules.ConfigurationProblem(corral.Webhooks) is { } webhooks)
            throw new ServerConfigurationException(webhooks);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = corral.MaxRequestBodyBytes;
            // What a response may hold before its writer waits: what an event-stream follower that stops reading costs
            // in the server, beyond the socket's own buffer (64 KiB by default). Streams flush in 16 KiB batches.
            k.Limits.MaxResponseBufferSize = 32 * 1024;
        });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(60));
        builder.Services.AddOptions<CorralOptions>().Bind(builder.Configuration.GetSection(CorralOptions.Section))
            .Validate(o => o.MaxConcurrentTasks >= 1 && o.MaxQueuedTasks >= 0, "Corral:MaxConcurrentTasks must be at least 1 and Corral:MaxQueuedTasks at least 0.")
            .Validate(o => o.MaxOutputBytes >= 1 && o.MaxRequestBodyBytes >= 1024, "Corral:MaxOutputBytes must be positive and Corral:MaxRequestBodyBytes at least 1024.")
            .ValidateOnStart();
        builder.Services.ConfigureHttpJsonOptions(o => ApiJson.Configure(o.SerializerOptions));
        // Every error response carries a machine-readable code, the framework's own (404, 405, 500…) included.
        builder.Services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.Complete);
        builder.Services.AddExceptionHandler<StoreUnavailableHandler>();
        builder.Services.AddOpenApi();
        string? postgres = options.Postgres ?? corral.Postgres.ConnectionString;
        AddTaskCore(builder.Services, data, corral, postgres is { Length: > 0 } ? new FleetSettings(postgres, NodeId(options.NodeId ?? corral.Fleet.NodeId, data)) : null);
        var metrics = builder.AddCorralTelemetry();
        builder.Services.AddDashboard();

        var guard = new BindGuard(token is not null);
        builder.Services.AddSingleton(guard);
        // Last, so that nothing above can fail with the lock taken; the container releases it when the app is disposed.
        var locked = DataDirectoryLock.Acquire(data);
        builder.Services.AddSingleton(_ => locked);
        WebApplication app;
        try
        {
            app = builder.Build();
            app.Services.GetRequiredService<DataDirectoryLock>();
        }
        catch
        {
            locked.Dispose();
            throw;
        }

        // The addresses given by --urls were checked above; what was really bound (Kestrel endpoints from any
        // configuration source, environment, appsettings.json) is checked here, and nothing is served until it is.
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            guard.Check(Addresses(app));
            if (guard.Violation is not null)
                app.Lifetime.StopApplication();
        });
        app.Use(guard.Gate);
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        if (token is not null)
            app.Use(RequireToken(token, path => DashboardEndpoints.IsPublic(path) || (metrics.Public && path.StartsWithSegments(TelemetrySetup.MetricsPath))));
        else
            app.Use(TaskCallers.Refuse(app.Services.GetRequiredService<Internal.Isolation.TaskUsers>()));
        app.MapHealthEndpoints();
        app.MapTaskEndpoints();
        app.MapWebhookEndpoints();
        app.MapFeedEndpoints();
        app.MapDashboard();
        app.MapCorralMetrics();
        app.MapOpenApi();
        return app;
    }

    /// <summary>
    /// The task core, in the order a request meets it: agents, admission, scheduler, runner, store; and the hosted
    /// services around it (storage guard, recovery before the first request, retention).
    /// </summary>
    private static void AddTaskCore(IServiceCollection services, string data, CorralOptions corral, FleetSettings? fleet)
    {
        services.AddSingleton(TimeProvider.System);
        // Tasks with uids of their own pass through the data directory to reach their own directories (never list it).
        bool ownUsers = (corral.Isolation.User ?? (Interop.Libc.geteuid() == 0 ? IsolationOptions.Dynamic : IsolationOptions.None)) != IsolationOptions.None;
        services.AddSingleton(new ServerPaths(data, Path.GetFullPath(corral.WorkspaceRoot ?? Path.Combine(data, "workspaces")))
        {
            DirectoryMode = ownUsers ? Files.TraverseOnly : Files.PrivateDirectory,
        });
        services.AddCorralAgent("ClaudeCode", o => new ClaudeCodeAdapter(new ClaudeCodeSettings { Executable = o.Executable ?? "claude", ExtraArguments = [.. o.ExtraArguments] }));
        services.AddCorralAgent("Command", _ => new CommandAdapter());
        services.AddCorralAgent("Codex", o => new CodexAdapter(o.Executable ?? "codex"));
        services.AddCorralAgent("Gemini", o => new GeminiAdapter(o.Executable ?? "gemini"));
        services.AddSingleton<AgentCatalog>();
        services.AddSingleton(ServerEnvironment.Current());
        services.AddSingleton<TaskUsers>();
        services.AddSingleton<TaskWorkspace>();
        services.AddSingleton<Admission>();
        services.AddSingleton<StorageGuard>();
        if (fleet is null)
        {
            services.AddSingleton<ITaskStore>(sp => new SqliteTaskStore(sp.GetRequiredService<ServerPaths>().Database, sp.GetRequiredService<TimeProvider>(),
                TimeSpan.FromSeconds(sp.GetRequiredService<IOptions<CorralOptions>>().Value.StoreWriteTimeoutSeconds),
                sp.GetRequiredService<StorageGuard>(), sp.GetRequiredService<ILogger<SqliteTaskStore>>()));
            services.AddSingleton<IJournalStore, FileJournalStore>();
            services.AddSingleton<IWebhookStore>(sp => new SqliteWebhookStore(sp.GetRequiredService<ServerPaths>().Database, sp.GetRequiredService<ITaskStore>()));
        }
        else
        {
            AddFleet(services, fleet, corral);
        }
        services.AddSingleton<TaskRunner>();
        services.AddSingleton<Scheduler>();
        services.AddSingleton<EventStream>();
        services.AddSingleton<Transcript>();
        services.AddSingleton<RawOutput>();
        services.AddSingleton<TaskFeed>();
        services.AddSingleton<ITaskObserver>(sp => sp.GetRequiredService<TaskFeed>());
        services.AddSingleton<WebhookOutbox>();
        services.AddSingleton<ITaskObserver>(sp => sp.GetRequiredService<WebhookOutbox>());
        services.AddHttpClient(WebhookDispatcher.ClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false });
        services.AddSingleton<TaskObservers>();
        services.AddSingleton<RetentionService>();
        services.AddHostedService(sp => sp.GetRequiredService<StorageGuard>());
        services.AddHostedService(sp => sp.GetRequiredService<TaskUsers>());
        services.AddHostedService<Internal.Running.LimitsProbe>();
        if (fleet is not null)
            services.AddHostedService<FleetService>(); // the schema and this node exist before recovery reads them
        services.AddSingleton<Recovery>();
        services.AddHostedService(sp => sp.GetRequiredService<Recovery>());
        services.AddHostedService(sp => sp.GetRequiredService<Scheduler>());
        services.AddHostedService(sp => sp.GetRequiredService<RetentionService>());
        services.AddHostedService<WebhookDispatcher>(); // after the fleet's migration and recovery
    }

    /// <summary>A node of a fleet: the shared PostgreSQL as the task store, the journal store and the queue.</summary>
    private static void AddFleet(IServiceCollection services, FleetSettings fleet, CorralOptions corral)
    {
        Npgsql.NpgsqlConnectionStringBuilder connection;
        try
        {
            connection = new Npgsql.NpgsqlConnectionStringBuilder(fleet.ConnectionString);
        }
        catch (ArgumentException e)
        {
            throw new ServerConfigurationException("the PostgreSQL connection string is not valid: " + e.Message);
        }

        connection.ApplicationName ??= "corral-" + fleet.NodeId;
        services.AddKeyedSingleton("tasks", (_, _) => Npgsql.NpgsqlDataSource.Create(connection.ConnectionString));
        // Journal chunks are durable within the WAL writer's delay, like journal files within the sync interval;
        // final records are written synchronously.
        var chunks = new Npgsql.NpgsqlConnectionStringBuilder(connection.ConnectionString) { Options = (connection.Options + " -c synchronous_commit=off").Trim() };
        services.AddKeyedSingleton("journal", (_, _) => Npgsql.NpgsqlDataSource.Create(chunks.ConnectionString));
        services.AddSingleton(sp => new PostgresTaskStore(sp.GetRequiredKeyedService<Npgsql.NpgsqlDataSource>("tasks"), fleet.NodeId, sp.GetRequiredService<TimeProvider>(),
            TimeSpan.FromSeconds(corral.StoreWriteTimeoutSeconds), sp.GetRequiredService<ILogger<PostgresTaskStore>>()));
        services.AddSingleton<ITaskStore>(sp => sp.GetRequiredService<PostgresTaskStore>());
        services.AddSingleton(sp => new PostgresNotifications(sp.GetRequiredKeyedService<Npgsql.NpgsqlDataSource>("tasks"), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<PostgresNotifications>>()));
        services.AddHostedService(sp => sp.GetRequiredService<PostgresNotifications>());
        services.AddSingleton(sp => new PostgresJournalStore(sp.GetRequiredKeyedService<Npgsql.NpgsqlDataSource>("tasks"), sp.GetRequiredKeyedService<Npgsql.NpgsqlDataSource>("journal"),
            sp.GetRequiredService<PostgresTaskStore>(), sp.GetRequiredService<PostgresNotifications>(), sp.GetRequiredService<ServerPaths>(),
            TimeSpan.FromSeconds(corral.Fleet.LeaseSeconds)));
        services.AddSingleton<IJournalStore>(sp => sp.GetRequiredService<PostgresJournalStore>());
        services.AddSingleton<IWebhookStore>(sp => new PostgresWebhookStore(sp.GetRequiredKeyedService<Npgsql.NpgsqlDataSource>("tasks")));
        services.AddSingleton(sp => new FleetNode(sp.GetRequiredService<PostgresTaskStore>(), sp.GetRequiredService<PostgresJournalStore>(),
            sp.GetRequiredService<PostgresNotifications>(), sp.GetRequiredService<IOptions<CorralOptions>>().Value));
        services.AddSingleton<FleetProcesses>();
        services.AddSingleton<FleetFeed>();
        services.AddSingleton<ITaskObserver>(sp => sp.GetRequiredService<FleetFeed>());
        services.AddHostedService(sp => sp.GetRequiredService<FleetFeed>());
    }

    /// <summary>This node's name: the one given, else the one kept in the data directory, else a new one (host name and a random suffix) kept there.</summary>
    internal static string NodeId(string? given, string data)
    {
        if (given is { Length: > 0 })
            return ValidNodeId(given) ? given : throw new ServerConfigurationException($"the node id '{given}' must be 1 to 64 letters, digits, '.', '_' or '-'.");
        string file = Path.Combine(data, "node-id");
        try
        {
            if (File.Exists(file) && File.ReadAllText(file).Trim() is { Length: > 0 } kept && ValidNodeId(kept))
                return kept;
            string host = new([.. Environment.MachineName.Where(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_').Take(48)]);
            string id = (host.Length > 0 ? host : "node") + "-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3));
            Files.CreatePrivateDirectory(data);
            File.WriteAllText(file, id + "\n");
            return id;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServerConfigurationException($"cannot keep the node id in '{file}': {e.Message}; pass --node-id.");
        }
    }

    private static bool ValidNodeId(string id) => id.Length is >= 1 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '_');

    /// <summary>The shared database and this node's name in it.</summary>
    private sealed record FleetSettings(string ConnectionString, string NodeId);

    private static string? ReadTokenFile(string? path)
    {
        if (path is null)
            return null;
        try
        {
            string token = File.ReadAllText(path).Trim();
            return token.Length > 0 ? token : throw new ServerConfigurationException($"the token file '{path}' is empty.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ServerConfigurationException($"cannot read the token file '{path}': {e.Message}");
        }
    }

    /// <summary>The first address in <paramref name="urls"/> that is not loopback, or <c>null</c>.</summary>
    internal static string? NonLoopback(string urls)
    {
        foreach (string url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
                return url; // "http://*:80", "http://+:80": every interface
            string host = uri.Host.Trim('[', ']');
            bool loopback = host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
                || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));
            if (!loopback)
                return url;
        }

        return null;
    }

    /// <summary>Every request needs the token but the probes and what <paramref name="isPublic"/> names (the dashboard's own files, a public <c>/metrics</c>).</summary>
    private static Func<HttpContext, RequestDelegate, Task> RequireToken(string token, Func<PathString, bool> isPublic)
    {
        byte[] expected = SHA256.HashData(Encoding.UTF8.GetBytes(token));
        return async (context, next) =>
        {
            var path = context.Request.Path;
            if (path.StartsWithSegments("/healthz") || path.StartsWithSegments("/readyz") || isPublic(path))
            {
                await next(context);
                return;
            }

            string? header = context.Request.Headers.Authorization.FirstOrDefault();
            bool ok = header is not null && header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase)
                && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim())), expected);
            if (ok)
            {
                await next(context);
                return;
            }

            context.Response.Headers.WWWAuthenticate = "Bearer";
            await Problems.Problem(context, 401, "unauthorized", "Unauthorized",
                header is null ? "Send 'Authorization: Bearer <token>'." : "The token is not valid.").ExecuteAsync(context);
        };
    }
}
