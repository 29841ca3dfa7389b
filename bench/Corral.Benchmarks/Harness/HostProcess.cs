using System.Diagnostics;

namespace Corral.Benchmarks.Harness;

/// <summary>This program started again in one of its host modes (a server, a fleet node), tagged so the harness finds all it started.</summary>
internal static class HostProcess
{
    private const string Listening = "Corral listening on ";

    /// <summary>Starts <c>this program ARGUMENTS</c> and waits up to a minute for its "Corral listening on URL" line; the process and the URL.</summary>
    public static async Task<(Process Process, string BaseUrl)> StartAsync(IEnumerable<string> arguments, string tag, string what)
    {
        var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(Environment.ProcessPath!) == "dotnet")
            psi.ArgumentList.Add(typeof(HostProcess).Assembly.Location);
        foreach (string a in arguments)
            psi.ArgumentList.Add(a);
        psi.Environment[Leftovers.TagVariable] = tag;
        // A server runs as `corral serve` ships (src/Corral.Cli): without thread-pool spinning. This program keeps .NET's
        // defaults, as an application calling the library (or a peer) would have them.
        psi.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
        var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            while (await p.StandardOutput.ReadLineAsync(cts.Token) is { } line)
            {
                if (line.StartsWith(Listening, StringComparison.Ordinal))
                {
                    _ = p.StandardOutput.ReadToEndAsync();
                    return (p, line[Listening.Length..].Trim());
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        p.Kill(entireProcessTree: true);
        Leftovers.KillAll(tag);
        throw new InvalidOperationException($"{what} did not start: {(stderr.IsCompleted ? stderr.Result : "")}");
    }
}
