using Corral.Client;
using Corral.Client.Internal;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers <see cref="CorralClient"/> with <c>IHttpClientFactory</c> and the client's resilience pipeline.</summary>
public static class CorralClientServiceCollectionExtensions
{
    /// <summary>The name of the HTTP client <see cref="AddCorralClient"/> registers (for <c>IHttpClientFactory.CreateClient</c>).</summary>
    public const string ClientName = "Corral.Client";

    /// <summary>
    /// Registers <see cref="CorralClient"/> as a typed HTTP client: its connections come from <c>IHttpClientFactory</c>,
    /// and every client it makes shares one resilience pipeline (retries, the circuit breaker, attempt timeouts), so the
    /// breaker sees every call to the server.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the server's address, the token and the rest of <see cref="CorralClientOptions"/>.</param>
    /// <returns>The HTTP client's builder, to add handlers or change the primary handler. A handler added here runs inside the
    /// pipeline: it sees each attempt.</returns>
    public static IHttpClientBuilder AddCorralClient(this IServiceCollection services, Action<CorralClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<CorralClientOptions>().Configure(configure).Validate(Valid, "CorralClientOptions are not valid.");
        var builder = services.AddHttpClient(ClientName).AddTypedClient((http, provider) =>
            new CorralClient(http, provider.GetRequiredService<IOptions<CorralClientOptions>>().Value));
        builder.ConfigureHttpClient(http => http.Timeout = Timeout.InfiniteTimeSpan);
        builder.ConfigurePrimaryHttpMessageHandler(provider =>
            CorralClient.CreatePrimaryHandler(provider.GetRequiredService<IOptions<CorralClientOptions>>().Value));
        builder.AddResilienceHandler(CorralResilience.PipelineName, (pipeline, context) =>
            CorralResilience.Configure(pipeline, context.ServiceProvider.GetRequiredService<IOptions<CorralClientOptions>>().Value));
        return builder;
    }

    private static bool Valid(CorralClientOptions options)
    {
        options.Validate();
        return true;
    }
}
