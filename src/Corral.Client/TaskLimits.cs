namespace Corral.Client;

/// <summary>Deadlines, turn limit and output cap of a task.</summary>
public sealed record TaskLimits
{
    /// <summary>The whole task, in seconds; past it the task ends <see cref="CorralTaskStatus.TimedOut"/> with error code <c>timeout</c>.</summary>
    public double? TimeoutSeconds { get; init; }

    /// <summary>No output at all for this long, in seconds (error code <c>stall</c>); 0 turns it off.</summary>
    public double? StallTimeoutSeconds { get; init; }

    /// <summary>Agent turns.</summary>
    public int? MaxTurns { get; init; }

    /// <summary>Output bytes (both streams) stored for the task; past it the task runs on and the rest is not stored.</summary>
    public long? MaxOutputBytes { get; init; }
}
