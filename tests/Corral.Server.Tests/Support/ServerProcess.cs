using System.Collections.Concurrent;
using System.Diagnostics;

namespace Corral.Server.Tests.Support;

/// <summary>The server as its own process (Corral.Server.TestHost), so a test can kill -9 it.</summary>
internal sealed class ServerProcess
{
    private readonly Process _process;

    private ServerProcess(Process process, Uri address, ConcurrentQueue<string> log)
    {
        _process = process;
        Log = log;
        Identity = Proc.Identify(process.Id);
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public HttpClient Http { get; }

    public int Pid => _process.Id;

    /// <summary>The server process, to signal it without ever reaching a recycled PID.</summary>
    public Proc.Identity? Identity { get; }

    /// <summary>What the server printed (stdout and stderr), for failure messages.</summary>
    public ConcurrentQueue<string> Log { get; }

    /// <summary>Sends a signal (SIGSTOP 19, SIGCONT 18…) to the server process.</summary>
    public bool Signal(int signal) => Identity is { } id && Proc.Signal(id, signal);

    /// <summary>The server's resident memory now, from /proc.</summary>
    public long ResidentBytes => Proc.ResidentBytes(_process.Id);

    public static async Task<ServerProcess> StartAsync(string data, Action<Dictionary<string, string>>? configure = null,
        IReadOnlyDictionary<string, string>? environment = null, string[]? arguments = null)
    {
        string host = HostPath();
        Assert.True(File.Exists(host), $"{host} is missing: build the solution");
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { host, "--urls", "http://127.0.0.1:0", "--data", data })
            info.ArgumentList.Add(a);
        var settings = TestServer.Defaults();
        configure?.Invoke(settings);
        foreach (var (key, value) in settings)
            info.ArgumentList.Add($"--{key}={value}");
        foreach (string a in arguments ?? [])
            info.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            info.Environment[key] = value;
        var process = Process.Start(info)!;
        var address = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
                return;
            log.Enqueue(e.Data);
            if (e.Data.StartsWith("Corral listening on "))
                address.TrySetResult(new Uri(e.Data["Corral listening on ".Length..]));
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
                log.Enqueue(e.Data);
        };
        _ = process.WaitForExitAsync().ContinueWith(_ => address.TrySetException(new InvalidOperationException(
            $"the server exited ({process.ExitCode}) before it listened:\n{string.Join('\n', log)}")), TaskScheduler.Default);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return new ServerProcess(process, await address.Task.WaitAsync(TimeSpan.FromSeconds(60)), log);
        }
        catch
        {
            process.Kill(true);
            throw;
        }
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(); // SIGKILL: no shutdown code runs
                _process.WaitForExit();
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>Holds the exclusive lock of a SQLite database from another process, as an operator's tool would.</summary>
    public static async Task<Process> HoldDatabaseLockAsync(string database, TimeSpan duration)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { HostPath(), "--hold-lock", database, duration.TotalSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture) })
            info.ArgumentList.Add(a);
        var process = Process.Start(info)!;
        var line = await process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal("locked", line);
        return process;
    }

    private static string HostPath() => Path.Combine(RepoRoot(), "tests", "Corral.Server.TestHost", "bin",
        new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name, "net10.0", "Corral.Server.TestHost.dll");

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Corral.slnx")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Corral.slnx not found above " + AppContext.BaseDirectory);
    }
}
