namespace Corral.Server.Tests.Support;

/// <summary>One server for the tests of a class that do not need their own configuration.</summary>
public sealed class SharedServer : IAsyncLifetime
{
    internal TestServer Server { get; private set; } = null!;

    public async ValueTask InitializeAsync()
    {
        // The server's children must not see it (the adapter removes it); set here so the tests can check that.
        Environment.SetEnvironmentVariable("CLAUDECODE", "1");
        Server = await TestServer.StartAsync();
    }

    public async ValueTask DisposeAsync() => await Server.DisposeAsync();
}
