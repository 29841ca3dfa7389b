using Corral.Server.Api;
using Corral.Server.Internal.Admission;
using Microsoft.Extensions.Logging;

namespace Corral.Server.Internal.Scheduling;

/// <summary>
/// Hears what happens to tasks, for whatever watches the server (the live feed, metrics, traces), never for the task
/// core itself: an observer changes nothing of what happens. Add one by registering it in DI; the core is not edited.
/// </summary>
internal interface ITaskObserver
{
    /// <summary>A task was accepted (queued, or about to start).</summary>
    void Accepted(TaskRecord record) { }

    /// <summary>A queued task's record changed (its <c>queueReason</c>).</summary>
    void Updated(TaskRecord record) { }

    /// <summary>A task's process is about to start.</summary>
    void Started(TaskRecord record) { }

    /// <summary>A task reached its final record (secrets masked).</summary>
    void Ended(TaskRecord record) { }

    /// <summary>A request was refused before anything existed.</summary>
    void Refused(string? agent, RefusalCode code) { }
}

/// <summary>Tells every registered <see cref="ITaskObserver"/>; one that throws is logged and does not stop the others or the task.</summary>
internal sealed class TaskObservers(IEnumerable<ITaskObserver> observers, ILogger<TaskObservers> logger)
{
    private readonly ITaskObserver[] _observers = [.. observers];

    public void Accepted(TaskRecord record) => Each(o => o.Accepted(record));

    public void Updated(TaskRecord record) => Each(o => o.Updated(record));

    public void Started(TaskRecord record) => Each(o => o.Started(record));

    public void Ended(TaskRecord record) => Each(o => o.Ended(record));

    public void Refused(string? agent, RefusalCode code) => Each(o => o.Refused(agent, code));

    private void Each(Action<ITaskObserver> tell)
    {
        foreach (var observer in _observers)
        {
            try
            {
                tell(observer);
            }
            catch (Exception e)
            {
                logger.LogError(e, "Task observer {Observer} failed", observer.GetType().Name);
            }
        }
    }
}
