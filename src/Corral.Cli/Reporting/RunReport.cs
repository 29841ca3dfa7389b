using Corral.Processes;

namespace Corral.Cli.Reporting;

/// <summary>What <c>corral run --report FILE</c> writes: the outcome of the tree, flattened for JSON (camelCase, enums as camelCase strings).</summary>
internal sealed record RunReport
{
    public required IReadOnlyList<string> Command { get; init; }

    public required int Pid { get; init; }

    public required string TreeId { get; init; }

    public required ExitReason Reason { get; init; }

    /// <summary>The child's own exit code; null when it was killed by a signal.</summary>
    public required int? ExitCode { get; init; }

    /// <summary>The signal that killed the child; null when it exited.</summary>
    public required int? Signal { get; init; }

    /// <summary>What <c>corral run</c> itself exits with (the exit code, 128+signal, or 124 on timeout).</summary>
    public required int ShellExitCode { get; init; }

    public required ContainmentKind Containment { get; init; }

    public required DateTimeOffset StartedAt { get; init; }

    public required DateTimeOffset ExitedAt { get; init; }

    public required DateTimeOffset CompletedAt { get; init; }

    public required double DurationMs { get; init; }

    public required double DrainAfterExitMs { get; init; }

    public required double TeardownMs { get; init; }

    public required IReadOnlyList<KilledEntry> Killed { get; init; }

    public required long StdoutBytes { get; init; }

    public required long StderrBytes { get; init; }

    public required bool StdoutTruncated { get; init; }

    public required bool StderrTruncated { get; init; }

    public required bool HolderSurvived { get; init; }

    public static RunReport From(ProcessOutcome outcome, IReadOnlyList<string> command) => new()
    {
        Command = command,
        Pid = outcome.Pid,
        TreeId = outcome.TreeId,
        Reason = outcome.Reason,
        ExitCode = outcome.ExitCode,
        Signal = outcome.Signal,
        ShellExitCode = outcome.ShellExitCode,
        Containment = outcome.Containment,
        StartedAt = outcome.StartedAt,
        ExitedAt = outcome.ExitedAt,
        CompletedAt = outcome.CompletedAt,
        DurationMs = Milliseconds(outcome.Duration),
        DrainAfterExitMs = Milliseconds(outcome.DrainAfterExit),
        TeardownMs = Milliseconds(outcome.TeardownDuration),
        Killed = outcome.Killed.Select(k => new KilledEntry(k.Pid, k.CommandLine, k.FoundBy)).ToArray(),
        StdoutBytes = outcome.StandardOutputBytes,
        StderrBytes = outcome.StandardErrorBytes,
        StdoutTruncated = outcome.StandardOutputTruncated,
        StderrTruncated = outcome.StandardErrorTruncated,
        HolderSurvived = outcome.HolderSurvived,
    };

    // Microsecond precision: drain times are often well under a millisecond.
    private static double Milliseconds(TimeSpan span) => Math.Round(span.TotalMilliseconds, 3);
}

/// <summary>One process signalled during teardown.</summary>
internal sealed record KilledEntry(int Pid, string Command, FoundBy FoundBy);
