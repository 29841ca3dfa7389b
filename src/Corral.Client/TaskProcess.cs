namespace Corral.Client;

/// <summary>
/// What happened to a task's process tree (the shape of <c>corral run --report</c>). Names that are enums on the
/// server (<see cref="Reason"/>, <see cref="Containment"/>) are strings here, so a newer server's values pass through.
/// </summary>
public sealed record TaskProcess
{
    /// <summary>What was started: the program, then its arguments.</summary>
    public IReadOnlyList<string> Command { get; init; } = [];

    /// <summary>The direct child's PID on the server.</summary>
    public int Pid { get; init; }

    /// <summary>The tree's id (also its cgroup leaf's name).</summary>
    public string? TreeId { get; init; }

    /// <summary><c>exited</c>, <c>signaled</c>, <c>timedOut</c> or <c>canceled</c>.</summary>
    public string? Reason { get; init; }

    /// <summary>The exit code, when the child exited.</summary>
    public int? ExitCode { get; init; }

    /// <summary>The signal number that ended the child, when one did.</summary>
    public int? Signal { get; init; }

    /// <summary>The exit status a shell would report (128+N for a signal, 124 for a timeout).</summary>
    public int? ShellExitCode { get; init; }

    /// <summary><c>cgroup</c> or <c>session</c>.</summary>
    public string? Containment { get; init; }

    /// <summary>When the child started.</summary>
    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>When the child exited.</summary>
    public DateTimeOffset? ExitedAt { get; init; }

    /// <summary>When the whole tree was gone and every byte read.</summary>
    public DateTimeOffset? CompletedAt { get; init; }

    /// <summary>From start to completion, in milliseconds.</summary>
    public double? DurationMs { get; init; }

    /// <summary>From the child's exit to completion, in milliseconds.</summary>
    public double? DrainAfterExitMs { get; init; }

    /// <summary>How long the teardown took, in milliseconds.</summary>
    public double? TeardownMs { get; init; }

    /// <summary>The processes that were still there and were killed.</summary>
    public IReadOnlyList<KilledProcess> Killed { get; init; } = [];

    /// <summary>Bytes read from stdout.</summary>
    public long StdoutBytes { get; init; }

    /// <summary>Bytes read from stderr.</summary>
    public long StderrBytes { get; init; }

    /// <summary>Whether a process holding the output pipes survived the teardown.</summary>
    public bool HolderSurvived { get; init; }
}
