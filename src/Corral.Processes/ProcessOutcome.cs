using System.Text.Json.Serialization;
using Corral.Processes.Internal;

namespace Corral.Processes;

/// <summary>Why a tree finished.</summary>
public enum ExitReason
{
    /// <summary>The direct child exited by itself with an exit code.</summary>
    Exited,

    /// <summary>The direct child was killed by a signal that Corral did not send.</summary>
    Signaled,

    /// <summary>The overall timeout passed and the tree was torn down.</summary>
    TimedOut,

    /// <summary>Cancellation was requested and the tree was torn down.</summary>
    Canceled,
}

/// <summary>How a tree was contained.</summary>
public enum ContainmentKind
{
    /// <summary>Its own cgroup v2 leaf: nothing can escape; teardown is <c>cgroup.kill</c>.</summary>
    Cgroup,

    /// <summary>Its own session, plus a <c>/proc</c> scan for pipe holders and the environment tag.</summary>
    Session,
}

/// <summary>How a process killed during teardown was found to belong to the tree.</summary>
public enum FoundBy
{
    /// <summary>Listed in the tree's cgroup.</summary>
    Cgroup,

    /// <summary>In the tree's session or process group.</summary>
    ProcessGroup,

    /// <summary>Held the write end of the tree's stdout or stderr pipe.</summary>
    PipeHolder,

    /// <summary>Carried the tree's <c>CORRAL_TREE_ID</c> environment tag.</summary>
    EnvironmentTag,

    /// <summary>Ran as the tree's exclusive uid (<see cref="ProcessUser.Exclusive"/>).</summary>
    Uid,
}

/// <summary>A process that Corral signalled during teardown.</summary>
/// <param name="Pid">Its process id.</param>
/// <param name="CommandLine">Its command line, capped at 200 characters (<c>command</c> in JSON).</param>
/// <param name="FoundBy">How it was found to belong to the tree.</param>
public sealed record KilledProcess(int Pid, [property: JsonPropertyName("command")] string CommandLine, FoundBy FoundBy);

/// <summary>
/// Exactly what happened to a process tree. This is also the one JSON shape of that fact, in <c>corral run --report</c>
/// and in the server's task record: camelCase, durations in milliseconds (<c>durationMs</c>, <c>drainAfterExitMs</c>,
/// <c>teardownMs</c>), byte counts as <c>stdoutBytes</c>/<c>stderrBytes</c>, the resource receipt as <c>resources</c>
/// (serialize enums as camelCase strings).
/// </summary>
public sealed record ProcessOutcome
{
    /// <summary>What was started: the program as given, then its arguments.</summary>
    public IReadOnlyList<string> Command { get; init; } = [];

    /// <summary>The direct child's process id.</summary>
    public required int Pid { get; init; }

    /// <summary>The tree's identifier, also set in its environment as <c>CORRAL_TREE_ID</c>.</summary>
    public required string TreeId { get; init; }

    /// <summary>Why the tree finished.</summary>
    public required ExitReason Reason { get; init; }

    /// <summary>The child's exit code, when it exited normally.</summary>
    public int? ExitCode { get; init; }

    /// <summary>The signal that killed the child, when it was killed by one.</summary>
    public int? Signal { get; init; }

    /// <summary>When the child was started.</summary>
    public required DateTimeOffset StartedAt { get; init; }

    /// <summary>When the direct child's exit was observed.</summary>
    public required DateTimeOffset ExitedAt { get; init; }

    /// <summary>When everything was finished: output drained, tree torn down, child reaped.</summary>
    public required DateTimeOffset CompletedAt { get; init; }

    /// <summary>From start to completion.</summary>
    [JsonPropertyName("durationMs")]
    [JsonConverter(typeof(MillisecondsConverter))]
    public TimeSpan Duration => CompletedAt - StartedAt;

    /// <summary>From the direct child's exit to completion.</summary>
    [JsonPropertyName("drainAfterExitMs")]
    [JsonConverter(typeof(MillisecondsConverter))]
    public TimeSpan DrainAfterExit => CompletedAt - ExitedAt;

    /// <summary>Time spent signalling and waiting for processes during teardown (zero when nothing needed it).</summary>
    [JsonPropertyName("teardownMs")]
    [JsonConverter(typeof(MillisecondsConverter))]
    public TimeSpan TeardownDuration { get; init; }

    /// <summary>How the tree was contained.</summary>
    public required ContainmentKind Containment { get; init; }

    /// <summary>The processes signalled during teardown, with how each was found.</summary>
    public IReadOnlyList<KilledProcess> Killed { get; init; } = [];

    /// <summary>Bytes read from standard output.</summary>
    [JsonPropertyName("stdoutBytes")]
    public long StandardOutputBytes { get; init; }

    /// <summary>Bytes read from standard error.</summary>
    [JsonPropertyName("stderrBytes")]
    public long StandardErrorBytes { get; init; }

    /// <summary>Whether captured standard output dropped bytes because of <see cref="OutputLimits.MaxBufferedBytes"/>.</summary>
    [JsonPropertyName("stdoutTruncated")]
    public bool StandardOutputTruncated { get; init; }

    /// <summary>Whether captured standard error dropped bytes because of <see cref="OutputLimits.MaxBufferedBytes"/>.</summary>
    [JsonPropertyName("stderrTruncated")]
    public bool StandardErrorTruncated { get; init; }

    /// <summary>Whether some process still held an output pipe when Corral stopped reading (detached, or unkillable).</summary>
    public bool HolderSurvived { get; init; }

    /// <summary>
    /// Why an output target stopped taking bytes: the first exception a <see cref="OutputTarget.ToStream"/> stream threw,
    /// as <c>stdout: IOException: Broken pipe</c>. The pipe was still read to the end (the child never blocks on it) and the
    /// rest of that stream counted and discarded. Null when every byte reached its target.
    /// </summary>
    public string? OutputError { get; init; }

    /// <summary>What the tree used (peak memory, CPU time, peak processes), whether it ran into a limit, and which limits were in force.</summary>
    public ResourceUsage Resources { get; init; } = ResourceUsage.Unknown;

    /// <summary>The exit code a shell would report: the exit code, 128+N for signal N, 124 on timeout.</summary>
    public int ShellExitCode => Reason == ExitReason.TimedOut ? 124 : ExitCode ?? (Signal is { } s ? 128 + s : 1);
}
