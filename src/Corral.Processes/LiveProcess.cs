using System.Text.Json.Serialization;
using Corral.Processes.Internal;

namespace Corral.Processes;

/// <summary>A live process of a tree, as <see cref="ProcessTree.GetProcesses"/> found it.</summary>
/// <param name="Pid">Its process id.</param>
/// <param name="ParentPid">Its parent's process id (1, or a subreaper, for an orphan).</param>
/// <param name="CommandLine">Its command line, capped at 200 characters (<c>command</c> in JSON).</param>
/// <param name="State">What it is doing.</param>
/// <param name="RssBytes">Resident memory.</param>
/// <param name="CpuTime">User plus system CPU time it has used (<c>cpuMs</c> in JSON).</param>
/// <param name="FoundBy">How it was found to belong to the tree.</param>
public sealed record LiveProcess(
    int Pid,
    int ParentPid,
    [property: JsonPropertyName("command")] string CommandLine,
    ProcessState State,
    long RssBytes,
    [property: JsonPropertyName("cpuMs"), JsonConverter(typeof(MillisecondsConverter))] TimeSpan CpuTime,
    FoundBy FoundBy);

/// <summary>A process's scheduling state, from <c>/proc/PID/stat</c>.</summary>
public enum ProcessState
{
    /// <summary>Running or runnable (R).</summary>
    Running,

    /// <summary>Sleeping, interruptibly (S).</summary>
    Sleeping,

    /// <summary>Waiting uninterruptibly, usually for I/O (D).</summary>
    UninterruptibleSleep,

    /// <summary>Stopped by a signal (T).</summary>
    Stopped,

    /// <summary>Stopped by a tracer (t).</summary>
    Traced,

    /// <summary>An idle kernel thread (I).</summary>
    Idle,

    /// <summary>Any other state the kernel reports.</summary>
    Other,
}
