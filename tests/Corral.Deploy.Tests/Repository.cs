using System.Diagnostics;

namespace Corral.Deploy.Tests;

/// <summary>The repository the tests run in, and programs run to their end.</summary>
internal static class Repository
{
    public static string Root { get; } = FindRoot();

    public static string Deploy(params string[] parts) => Path.Combine([Root, "deploy", .. parts]);

    /// <summary>The ladder a stopping node runs through, with the server's defaults, in seconds: what a stop must outlast.</summary>
    public static double LadderSeconds
    {
        get
        {
            var defaults = new Corral.Server.Hosting.CorralOptions();
            return defaults.InterruptGraceSeconds + defaults.CloseInputGraceSeconds + defaults.TerminateGraceSeconds;
        }
    }

    public static async Task<(int Code, string Stdout, string Stderr)> RunAsync(string program, IEnumerable<string> args, TimeSpan timeout,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Root };
        foreach (string a in args)
            info.ArgumentList.Add(a);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
            info.Environment[key] = value;
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            await process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} {string.Join(' ', args)} did not finish within {timeout}: {await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    public static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(dir => File.Exists(Path.Combine(dir, program)));

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Corral.slnx")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Corral.slnx not found above " + AppContext.BaseDirectory);
    }
}
