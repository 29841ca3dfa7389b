namespace Corral.Client;

/// <summary>Where a task is in its life (the record's <c>status</c>).</summary>
public enum CorralTaskStatus
{
    /// <summary>A status this version of the client does not know (a newer server); see <see cref="CorralTask.Raw"/>.</summary>
    Unknown = 0,

    /// <summary>Waiting for a slot.</summary>
    Queued,

    /// <summary>The agent process is running.</summary>
    Running,

    /// <summary>The agent reported success.</summary>
    Succeeded,

    /// <summary>The agent reported an error, or could not be started.</summary>
    Failed,

    /// <summary>The whole-task timeout or the stall timeout passed (<c>error.code</c> says which).</summary>
    TimedOut,

    /// <summary>Cancelled by a caller.</summary>
    Cancelled,

    /// <summary>The agent ended without a result and none could be recovered.</summary>
    Lost,

    /// <summary>The server stopped (crash or shutdown) while the task was queued or running.</summary>
    Interrupted,
}
