using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Corral.Testing.Support.Postgres;

/// <summary>
/// A real, throwaway PostgreSQL server (Debian's <c>postgresql</c> package) in a temporary directory, run as the
/// <c>postgres</c> user (it refuses root) on a free loopback port, with <c>fsync=off</c>. <see cref="CreateDatabaseAsync"/>
/// gives each test a database of its own. Unavailable (a clear reason) where the package is not installed.
/// </summary>
public sealed class PostgresCluster : IAsyncDisposable
{
    private readonly string _bin;
    private readonly string _root;
    private int _databases;

    private PostgresCluster(string bin, string root, int port)
    {
        _bin = bin;
        _root = root;
        Port = port;
    }

    public int Port { get; }

    private string DataDirectory => Path.Combine(_root, "data");

    /// <summary>Why there can be no cluster here, or <c>null</c>.</summary>
    public static string? Unavailable =>
        Environment.UserName != "root" ? "starting PostgreSQL as the postgres user needs root (CI runs as root)"
        : FindBin() is null ? "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
        : null;

    public static async Task<PostgresCluster> StartAsync()
    {
        string bin = FindBin() ?? throw new InvalidOperationException(Unavailable);
        string root = Directory.CreateTempSubdirectory("corral-pg-").FullName;
        File.SetUnixFileMode(root, (UnixFileMode)Convert.ToInt32("755", 8));
        var cluster = new PostgresCluster(bin, root, FreePort());
        await cluster.RunAsync("chown", "postgres:postgres", root);
        await cluster.AsPostgresAsync(Path.Combine(bin, "initdb"), "-D", cluster.DataDirectory, "-U", "corral", "-A", "trust", "--no-sync", "-E", "UTF8");
        await cluster.StartServerAsync();
        return cluster;
    }

    /// <summary>A connection string to a fresh, empty database.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        string name = $"t{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}"[..30];
        await AsPostgresAsync(Path.Combine(_bin, "psql"), "-h", "127.0.0.1", "-p", Port.ToString(), "-U", "corral", "-d", "postgres", "-qc", $"CREATE DATABASE {name}");
        return ConnectionString(name);
    }

    public string ConnectionString(string database) =>
        $"Host=127.0.0.1;Port={Port};Username=corral;Database={database};Pooling=true;Timeout=5;Command Timeout=15";

    /// <summary>Stops the server (fast: connections are cut), then starts it again on the same port.</summary>
    public async Task RestartAsync(TimeSpan down)
    {
        await StopServerAsync();
        await Task.Delay(down);
        await StartServerAsync();
    }

    /// <summary>Stops the server (fast: connections are cut, new ones refused) until <see cref="StartServerAsync"/>.</summary>
    public Task StopServerAsync() => AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", DataDirectory, "-m", "fast", "-w", "stop");

    /// <summary>Starts the server on its port (again, after <see cref="StopServerAsync"/>), once it accepts connections.</summary>
    public Task StartServerAsync() => AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", DataDirectory, "-l", Path.Combine(_root, "log"), "-w", "-o",
        $"-p {Port} -k {_root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start");

    public async ValueTask DisposeAsync()
    {
        try
        {
            await AsPostgresAsync(Path.Combine(_bin, "pg_ctl"), "-D", DataDirectory, "-m", "immediate", "-w", "stop");
        }
        catch (InvalidOperationException)
        {
        }

        Directory.Delete(_root, true);
    }

    private Task AsPostgresAsync(params string[] command) => RunAsync("runuser", ["-u", "postgres", "--", .. command]);

    private async Task RunAsync(string program, params string[] args)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = "/" };
        foreach (string a in args)
            info.ArgumentList.Add(a);
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"{program} {string.Join(' ', args)} exited {p.ExitCode}: {await stderr}{await stdout}");
    }

    private static string? FindBin() =>
        Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")).Where(b => File.Exists(Path.Combine(b, "initdb"))).Order().LastOrDefault()
            : null;

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
