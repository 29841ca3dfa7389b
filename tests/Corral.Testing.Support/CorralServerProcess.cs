using System.Diagnostics;
using System.Text;

namespace Corral.Testing.Support;

/// <summary>
/// The Corral server as its own process (tests/Corral.Server.TestHost, the way <c>corral serve</c> runs it), so a test
/// can kill -9 it and start it again on the same data directory and port.
/// </summary>
public sealed class CorralServerProcess : IDisposable
{
    private const string Listening = "Corral listening on ";

    private readonly Process _process;

    private readonly StringBuilder _log;

    private CorralServerProcess(Process process, Uri address, string dataDirectory, IReadOnlyList<string> arguments,
        IReadOnlyDictionary<string, string> environment, StringBuilder log)
    {
        _process = process;
        Address = address;
        DataDirectory = dataDirectory;
        Arguments = arguments;
        Environment = environment;
        _log = log;
    }

    /// <summary>Where it listens, e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public Uri Address { get; }

    public string DataDirectory { get; }

    /// <summary>The arguments after <c>--urls</c> and <c>--data</c> (options such as <c>--token</c> and <c>--Corral:Key=Value</c>).</summary>
    public IReadOnlyList<string> Arguments { get; }

    public IReadOnlyDictionary<string, string> Environment { get; }

    public int Pid => _process.Id;

    /// <summary>What the server printed so far (for a failing test's message).</summary>
    public string Log
    {
        get
        {
            lock (_log)
                return _log.ToString();
        }
    }

    /// <summary>The built test host: tests/Corral.Server.TestHost/bin/CONFIGURATION/net10.0 (build the solution, or reference the project).</summary>
    public static string HostPath() => Path.Combine(RepoRoot(), "tests", "Corral.Server.TestHost", "bin",
        new DirectoryInfo(AppContext.BaseDirectory.TrimEnd('/')).Parent!.Name, "net10.0", "Corral.Server.TestHost.dll");

    /// <summary>The repository's root: the first directory above the tests' binaries with Corral.slnx.</summary>
    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Corral.slnx")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Corral.slnx not found above " + AppContext.BaseDirectory);
    }

    /// <summary>Starts a server on <paramref name="urls"/> (a free loopback port by default) and waits until it listens.</summary>
    public static async Task<CorralServerProcess> StartAsync(string dataDirectory, IEnumerable<string>? arguments = null,
        IReadOnlyDictionary<string, string>? environment = null, string urls = "http://127.0.0.1:0", TimeSpan? timeout = null)
    {
        string host = HostPath();
        if (!File.Exists(host))
            throw new FileNotFoundException($"{host} is missing: build the solution (or reference Corral.Server.TestHost).", host);
        var args = arguments?.ToList() ?? [];
        var env = environment ?? new Dictionary<string, string>();
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { host, "--urls", urls, "--data", dataDirectory }.Concat(args))
            info.ArgumentList.Add(a);
        // Tests kill servers with SIGKILL, and a killed .NET process leaves its debugger pipes and diagnostic socket in
        // /tmp for good: none are made.
        info.Environment["DOTNET_EnableDiagnostics"] = "0";
        foreach (var (key, value) in env)
            info.Environment[key] = value;
        var log = new StringBuilder();
        var process = Process.Start(info)!;
        var address = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                address.TrySetException(new InvalidOperationException("The server exited before it listened:\n" + Text(log)));
                return;
            }

            Append(log, e.Data);
            if (e.Data.StartsWith(Listening, StringComparison.Ordinal))
                address.TrySetResult(new Uri(e.Data[Listening.Length..]));
        };
        process.ErrorDataReceived += (_, e) => Append(log, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            var uri = await address.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
            return new CorralServerProcess(process, uri, dataDirectory, args, env, log);
        }
        catch
        {
            process.Kill(true);
            process.WaitForExit();
            process.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A new server on the same data directory, arguments and port (after <see cref="Kill"/>). The port is tried again
    /// for a while in case the old sockets still hold it.
    /// </summary>
    public async Task<CorralServerProcess> RestartAsync(TimeSpan? timeout = null)
    {
        Kill();
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        while (true)
        {
            try
            {
                return await StartAsync(DataDirectory, Arguments, Environment, $"http://127.0.0.1:{Address.Port}", limit - clock.Elapsed);
            }
            catch (InvalidOperationException) when (clock.Elapsed < limit - TimeSpan.FromSeconds(5))
            {
                await Task.Delay(250); // "address already in use": the old server's sockets are not gone yet
            }
        }
    }

    /// <summary>SIGKILL: no shutdown code runs. Waits until the process is gone.</summary>
    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit();
            }
        }
        catch (InvalidOperationException)
        {
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }

    private static void Append(StringBuilder log, string? line)
    {
        if (line is null)
            return;
        lock (log)
            log.AppendLine(line);
    }

    private static string Text(StringBuilder log)
    {
        lock (log)
            return log.ToString();
    }
}
