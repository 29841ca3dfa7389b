using Corral.Client;

namespace Corral.Client.Tests.Support;

/// <summary>
/// A real Corral server process for client tests (the command agent; Claude's CLI deliberately missing, so
/// <c>agent_not_available</c> can be asked for), with its own data directory, and clients for it.
/// </summary>
public sealed class ClientServer : IAsyncDisposable
{
    private ClientServer(CorralServerProcess process, string? token)
    {
        Process = process;
        Token = token;
    }

    public CorralServerProcess Process { get; private set; }

    public string? Token { get; }

    public Uri Address => Process.Address;

    /// <summary>Settings every client test server has: quick keep-alives and ladders, a short Retry-After.</summary>
    public static Dictionary<string, string> Defaults() => new()
    {
        ["Corral:ClaudeCode:Executable"] = "/nonexistent/claude",
        ["Corral:Codex:Enabled"] = "false",
        ["Corral:Gemini:Enabled"] = "false",
        ["Corral:MaxConcurrentTasks"] = "8",
        ["Corral:MaxQueuedTasks"] = "8",
        ["Corral:RetryAfterSeconds"] = "1",
        ["Corral:KeepAliveSeconds"] = "1",
        ["Corral:InterruptGraceSeconds"] = "2",
        ["Corral:ExitGraceSeconds"] = "2",
        ["Corral:CloseInputGraceSeconds"] = "1",
        ["Corral:TerminateGraceSeconds"] = "1",
        ["Logging:LogLevel:Default"] = "Warning",
    };

    public static async Task<ClientServer> StartAsync(Action<Dictionary<string, string>>? configure = null, string? token = null)
    {
        var settings = Defaults();
        configure?.Invoke(settings);
        var args = settings.Select(kv => $"--{kv.Key}={kv.Value}").ToList();
        if (token is not null)
            args.AddRange(["--token", token]);
        string data = Directory.CreateTempSubdirectory("corral-client-").FullName;
        return new ClientServer(await CorralServerProcess.StartAsync(data, args), token);
    }

    /// <summary>Options for a client of this server; tests shorten what they need.</summary>
    public CorralClientOptions Options(Action<CorralClientOptions>? configure = null)
    {
        var options = new CorralClientOptions { BaseAddress = Address, Token = Token };
        configure?.Invoke(options);
        return options;
    }

    public CorralClient Client(Action<CorralClientOptions>? configure = null) => new(Options(configure));

    public void Kill() => Process.Kill();

    /// <summary>kill -9, then a new server on the same data directory and port.</summary>
    public async Task RestartAsync() => Process = await Process.RestartAsync();

    public ValueTask DisposeAsync()
    {
        Process.Dispose();
        try
        {
            Directory.Delete(Process.DataDirectory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>One server for all the tests of a class.</summary>
public sealed class SharedServer : IAsyncLifetime
{
    private ClientServer? _server;

    public ClientServer Server => _server ?? throw new InvalidOperationException("not started");

    public async ValueTask InitializeAsync() => _server = await ClientServer.StartAsync();

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
            await _server.DisposeAsync();
    }
}
