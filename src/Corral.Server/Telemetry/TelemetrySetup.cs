using Corral.Server.Internal.Scheduling;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Corral.Server.Telemetry;

/// <summary>Settings of <c>/metrics</c>, from <c>Corral:Metrics</c>.</summary>
internal sealed class MetricsOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Corral:Metrics";

    /// <summary>Serve <c>/metrics</c> without the token (for a scraper on a trusted network). Default: false, it needs the token like the API.</summary>
    public bool Public { get; set; }
}

/// <summary>
/// OpenTelemetry for the server: the task metrics, ASP.NET Core's and the runtime's meters on <c>/metrics</c> (Prometheus
/// text), and, when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> (or <c>OTEL_EXPORTER_OTLP_TRACES_ENDPOINT</c>) is set, a span per
/// task and per request exported over OTLP (protocol, headers and the rest from the standard <c>OTEL_*</c> variables).
/// </summary>
internal static class TelemetrySetup
{
    /// <summary>The scrape path.</summary>
    public const string MetricsPath = "/metrics";

    /// <summary>The meters of one host: the task metrics, and ASP.NET Core's (requests, connections, routing).</summary>
    private static readonly string[] LocalMeters =
    [
        TelemetryNames.Source, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.Routing",
        "Microsoft.AspNetCore.Diagnostics", "Microsoft.AspNetCore.Http.Connections", "Microsoft.AspNetCore.RateLimiting",
        "Microsoft.AspNetCore.MemoryPool", "Microsoft.AspNetCore.Authentication", "Microsoft.AspNetCore.Authorization",
    ];

    /// <summary>Registers the task observers and the providers. Returns the metrics settings.</summary>
    public static MetricsOptions AddCorralTelemetry(this WebApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        var services = builder.Services;
        var metrics = configuration.GetSection(MetricsOptions.Section).Get<MetricsOptions>() ?? new MetricsOptions();
        services.AddSingleton<TaskMetrics>();
        services.AddSingleton<ITaskObserver>(sp => sp.GetRequiredService<TaskMetrics>());

        // The task meter and ASP.NET Core's are enabled for this host's own meter factory only (MeterScope.Local), not
        // through AddMeter, whose listener takes every meter of that name in the process: two servers in one process (a
        // test run, a custom host) would count each other's tasks. The runtime's meter is the process's own anyway.
        services.AddMetrics(m =>
        {
            foreach (string meter in LocalMeters)
                m.EnableMetrics(meter, instrumentName: null, listenerName: null, scopes: MeterScope.Local);
        });
        var otel = services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService(configuration["OTEL_SERVICE_NAME"] is { Length: > 0 } name ? name : "corral",
                serviceVersion: typeof(TelemetrySetup).Assembly.GetName().Version?.ToString(), serviceInstanceId: Environment.MachineName))
            .WithMetrics(m => m
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter(o => o.ScrapeResponseCacheDurationMilliseconds = 0));

        if (TracingConfigured(configuration))
        {
            services.AddSingleton<TaskTracing>();
            services.AddSingleton<ITaskObserver>(sp => sp.GetRequiredService<TaskTracing>());
            otel.WithTracing(t => t
                .AddSource(TelemetryNames.Source)
                .AddAspNetCoreInstrumentation(o => o.Filter = c => Traced(c.Request.Path))
                .AddOtlpExporter());
        }

        return metrics;
    }

    /// <summary>Maps <c>/metrics</c>.</summary>
    public static void MapCorralMetrics(this WebApplication app) => app.MapPrometheusScrapingEndpoint(MetricsPath);

    /// <summary>Whether an OTLP endpoint for traces is configured (environment or any other configuration source).</summary>
    public static bool TracingConfigured(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]) || !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]);

    /// <summary>Requests worth a span: the API. Scrapes, probes and the dashboard's own files are not.</summary>
    private static bool Traced(PathString path) =>
        !path.StartsWithSegments(MetricsPath) && !path.StartsWithSegments("/healthz") && !path.StartsWithSegments("/readyz") && !Dashboard.DashboardEndpoints.IsPublic(path);
}
