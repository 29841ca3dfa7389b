using Corral.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Corral.Client.Tests.Support;

/// <summary>A client made the way an application makes it (AddCorralClient), with an <see cref="AttemptLog"/> inside its pipeline.</summary>
public sealed class LoggedClient : IDisposable
{
    private readonly ServiceProvider _provider;

    public LoggedClient(ClientServer server, Action<CorralClientOptions>? configure = null)
    {
        var services = new ServiceCollection();
        services.AddCorralClient(o =>
        {
            o.BaseAddress = server.Address;
            o.Token = server.Token;
            configure?.Invoke(o);
        }).AddHttpMessageHandler(() => Log);
        _provider = services.BuildServiceProvider();
        Client = _provider.GetRequiredService<CorralClient>();
    }

    public AttemptLog Log { get; } = new();

    public CorralClient Client { get; }

    public void Dispose() => _provider.Dispose();
}
