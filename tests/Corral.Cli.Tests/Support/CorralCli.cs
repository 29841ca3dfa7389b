using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using Corral.Processes;

namespace Corral.Cli.Tests.Support;

/// <summary>What one run of the corral executable did.</summary>
internal sealed record CliResult(ProcessOutcome Outcome, byte[] Stdout, byte[] Stderr, TimeSpan Elapsed, DateTimeOffset FinishedAt)
{
    /// <summary>corral's exit code; fails the test if corral did not exit by itself (the harness had to kill it, or a signal did).</summary>
    public int ExitCode
    {
        get
        {
            Assert.True(Outcome.Reason == ExitReason.Exited && Outcome.ExitCode is not null,
                $"corral did not exit by itself: {Outcome.Reason}, signal {Outcome.Signal}. stderr: {StderrText}");
            return Outcome.ExitCode!.Value;
        }
    }

    public string StdoutText => Encoding.UTF8.GetString(Stdout);

    public string StderrText => Encoding.UTF8.GetString(Stderr);
}

/// <summary>
/// Runs the built corral (copied next to the tests by the project reference) as a real child process.
/// The harness itself uses Corral.Processes: it starts corral with default signal dispositions (a test host
/// started in the background has SIGINT ignored, which corral would rightly keep ignoring), bounds every run
/// with a deadline, and reaps corral whatever happens.
/// </summary>
internal static class CorralCli
{
    /// <summary>No run in these tests should take anywhere near this long; past it the harness kills corral.</summary>
    public static readonly TimeSpan HarnessDeadline = TimeSpan.FromSeconds(90);

    /// <summary>The built corral, next to the tests.</summary>
    public static readonly string Dll = Path.Combine(AppContext.BaseDirectory, "corral.dll");

    /// <summary>The dotnet host running these tests; corral runs on the same runtime.</summary>
    public static readonly string DotnetHost = FindDotnet();

    public static ProcessSpec Spec(IEnumerable<string> args, InputSource? stdin = null)
    {
        Assert.True(File.Exists(Dll), $"corral.dll not found next to the tests at {Dll}.");
        return new ProcessSpec(DotnetHost, [Dll, .. args])
        {
            StandardInput = stdin ?? InputSource.Null,
            // The session fallback keeps the harness independent of corral's own cgroup use.
            Containment = ContainmentMode.Session,
            Timeout = HarnessDeadline,
            Teardown = new TeardownOptions { Grace = TimeSpan.FromSeconds(2) },
            // A corral killed by the harness would leave its debugger pipes in /tmp for good: none are made.
            Environment = new Dictionary<string, string?> { ["DOTNET_EnableDiagnostics"] = "0" },
        };
    }

    public static async Task<CliResult> RunAsync(IEnumerable<string> args, InputSource? stdin = null)
    {
        var clock = Stopwatch.StartNew();
        var result = await ProcessTree.RunAsync(Spec(args, stdin), TestContext.Current.CancellationToken);
        clock.Stop();
        return new CliResult(result.Outcome, result.StandardOutputBytes.ToArray(), result.StandardErrorBytes.ToArray(), clock.Elapsed, result.Outcome.ExitedAt);
    }

    /// <summary>Starts corral and leaves it running, e.g. to signal it. Dispose the tree to kill corral if the test fails.</summary>
    public static ProcessTree Start(IEnumerable<string> args, InputSource? stdin = null) =>
        ProcessTree.Start(Spec(args, stdin), TestContext.Current.CancellationToken);

    public static async Task<CliResult> FinishAsync(ProcessTree tree, Stopwatch clock)
    {
        var chunks = new List<OutputChunk>();
        await foreach (var chunk in tree.ReadChunksAsync())
            chunks.Add(new OutputChunk(chunk.Stream, chunk.Bytes.ToArray()));
        var outcome = await tree.Completion;
        clock.Stop();
        byte[] Bytes(OutputStream s) => chunks.Where(c => c.Stream == s).SelectMany(c => c.Bytes.ToArray()).ToArray();
        return new CliResult(outcome, Bytes(OutputStream.StandardOutput), Bytes(OutputStream.StandardError), clock.Elapsed, outcome.ExitedAt);
    }

    private static string FindDotnet()
    {
        // shared/Microsoft.NETCore.App/<version>/ → the install root holds the dotnet host.
        string runtimeDir = RuntimeEnvironment.GetRuntimeDirectory();
        string candidate = Path.GetFullPath(Path.Combine(runtimeDir, "..", "..", "..", "dotnet"));
        if (File.Exists(candidate))
            return candidate;
        if (Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { } hostPath && File.Exists(hostPath))
            return hostPath;
        return "dotnet";
    }
}
