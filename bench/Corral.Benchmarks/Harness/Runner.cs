using System.Diagnostics;
using Corral.Benchmarks.Contenders;

namespace Corral.Benchmarks.Harness;

internal sealed class Options
{
    public bool Quick { get; set; }
    public List<string> Scenarios { get; } = [];
    public string? OutputDirectory { get; set; }
    public TimeSpan Cap { get; set; } = TimeSpan.FromSeconds(3);
    public double Scale { get; set; } = 1.0;
    public bool NoCharts { get; set; }

    /// <summary>--only: run only contenders whose name contains one of these (case-insensitive).</summary>
    public List<string> Only { get; } = [];

    public bool Includes(string contender) =>
        Only.Count == 0 || Only.Any(o => contender.Contains(o, StringComparison.OrdinalIgnoreCase));

    /// <summary>An iteration count: the full value, or the quick one with --quick; scaled by --scale.</summary>
    public int N(int full, int quick) => Math.Max(1, (int)Math.Round((Quick ? quick : full) * Scale));
}

internal sealed class RunContext
{
    public required Options Options { get; init; }
    public required RunReport Report { get; init; }
    public required string ResultsDirectory { get; init; }
    public required string RepoRoot { get; init; }

    public bool Quick => Options.Quick;

    public static void Log(string message) => Console.WriteLine($"[{DateTime.Now:HH:mm:ss}] {message}");
}

internal interface IScenario
{
    string Key { get; }
    string Title { get; }

    /// <summary>Why the scenario cannot run in this build or on this machine; null when it can.</summary>
    string? Unavailable { get; }

    Task RunAsync(RunContext context);
}

internal static class Measure
{
    /// <summary>
    /// Times one call. If it has not returned <paramref name="hardCap"/> after it started (a contender that does not
    /// honour its own timeout), the harness kills the tagged processes so it can return, and marks it capped.
    /// Then checks /proc for processes of the call left behind and kills them.
    /// </summary>
    public static async Task<(double Ms, CallResult? Result, string? Error, bool Capped, int LeftBehind)> CallAsync(
        Func<Task<CallResult>> call, TimeSpan hardCap, string tag)
    {
        var sw = Stopwatch.StartNew();
        Task<CallResult> task;
        try
        {
            task = call();
        }
        catch (Exception e)
        {
            return (sw.Elapsed.TotalMilliseconds, null, e.GetType().Name + ": " + e.Message, false, Leftovers.KillAll(tag));
        }

        bool hard = false;
        if (!task.IsCompleted && await Task.WhenAny(task, Task.Delay(hardCap)).ConfigureAwait(false) != task)
            hard = true;
        double ms = sw.Elapsed.TotalMilliseconds;
        int left = 0;
        if (hard)
            left += Leftovers.KillAll(tag);
        CallResult? result = null;
        string? error = null;
        try
        {
            result = await task.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            error = e.GetType().Name + ": " + e.Message;
        }

        left += Leftovers.KillAll(tag);
        return (ms, result, error, hard || result?.Canceled == true, left);
    }

    /// <summary>Rotates the order each round so no contender always runs first (or right after an expensive one).</summary>
    public static IEnumerable<T> Rotate<T>(IReadOnlyList<T> items, int round)
    {
        for (int i = 0; i < items.Count; i++)
            yield return items[(i + round) % items.Count];
    }

    public static void Settle()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }
}
