using System.Diagnostics;

namespace Corral.Server.Tests.Support;

/// <summary>The server as its own process (Corral.Server.TestHost, through the shared <see cref="CorralServerProcess"/>), so a test can kill -9 it.</summary>
internal sealed class ServerProcess
{
    private readonly CorralServerProcess _server;

    private ServerProcess(CorralServerProcess server)
    {
        _server = server;
        Identity = Proc.Identify(server.Pid);
        Http = new HttpClient { BaseAddress = server.Address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public HttpClient Http { get; }

    public int Pid => _server.Pid;

    /// <summary>The server process, to signal it without ever reaching a recycled PID.</summary>
    public Proc.Identity? Identity { get; }

    /// <summary>What the server printed so far (stdout and stderr), for conditions and failure messages.</summary>
    public string Log => _server.Log;

    /// <summary>Sends a signal (SIGSTOP 19, SIGCONT 18…) to the server process.</summary>
    public bool Signal(int signal) => Identity is { } id && Proc.Signal(id, signal);

    /// <summary>The server's resident memory now, from /proc.</summary>
    public long ResidentBytes => Proc.ResidentBytes(_server.Pid);

    public static async Task<ServerProcess> StartAsync(string data, Action<Dictionary<string, string>>? configure = null,
        IReadOnlyDictionary<string, string>? environment = null, string[]? arguments = null)
    {
        var settings = TestServer.Defaults();
        configure?.Invoke(settings);
        var args = settings.Select(kv => $"--{kv.Key}={kv.Value}").Concat(arguments ?? []);
        return new ServerProcess(await CorralServerProcess.StartAsync(data, args, environment));
    }

    public void Kill() => _server.Kill();

    /// <summary>Holds the exclusive lock of a SQLite database from another process, as an operator's tool would.</summary>
    public static async Task<Process> HoldDatabaseLockAsync(string database, TimeSpan duration)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false, Environment = { ["DOTNET_EnableDiagnostics"] = "0" } };
        foreach (string a in new[] { CorralServerProcess.HostPath(), "--hold-lock", database, duration.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("locked", line);
        return process;
    }
}
