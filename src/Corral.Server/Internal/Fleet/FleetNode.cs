using System.Collections.Concurrent;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Admission;
using Corral.Server.Internal.Recovery;
using Corral.Server.Internal.Running;
using Corral.Server.Internal.Storage.Journal;
using Corral.Server.Internal.Storage.Postgres;

namespace Corral.Server.Internal.Fleet;

/// <summary>
/// This node's part in a fleet that shares one PostgreSQL: its name, the shared stores, the wake-ups, the lease, and
/// the plans only this node can run (a request's secrets live in the memory of the node that accepted it, nowhere
/// else). Registered only in fleet mode; the scheduler asks it where the single-node path would use its own queue.
/// </summary>
internal sealed class FleetNode(PostgresTaskStore store, PostgresJournalStore journals, PostgresNotifications notifications, CorralOptions options)
{
    private readonly ConcurrentDictionary<string, TaskPlan> _held = new(StringComparer.Ordinal);

    public string Node => store.Node;

    public PostgresTaskStore Store => store;

    public PostgresJournalStore Journals => journals;

    public PostgresNotifications Notifications => notifications;

    /// <summary>How long a hold on a running task lasts without renewal (<c>Corral:Fleet:LeaseSeconds</c>).</summary>
    public TimeSpan Lease { get; } = TimeSpan.FromSeconds(Math.Max(1, options.Fleet.LeaseSeconds));

    /// <summary>Raised when this node may be able to claim a task (one was queued here, a slot freed).</summary>
    public event Action? ClaimSoon;

    public void Wake() => ClaimSoon?.Invoke();

    /// <summary>Whether the last lease renewal reached the database (readiness says so).</summary>
    public bool Reachable { get; set; } = true;

    /// <summary>Keeps a plan whose secrets only this node's memory holds, until this node claims its task.</summary>
    public void Hold(TaskPlan plan) => _held[plan.Id] = plan;

    /// <summary>The held plan of a task, taken (<c>null</c>: none, e.g. this node restarted since it accepted the task).</summary>
    public TaskPlan? Take(string id) => _held.TryRemove(id, out var plan) ? plan : null;

    /// <summary>The tasks whose plans this node holds: they can run nowhere else.</summary>
    public IReadOnlyCollection<string> Held => [.. _held.Keys];

    /// <summary>
    /// The record of a task that another node ended because its owner stopped renewing (with what its journal says of
    /// its tree and output, as a restart's recovery gives), or that only a node that is gone could run. Reads the journal's
    /// head and its chunks' counts, never its output.
    /// </summary>
    public TaskRecord Interrupted(TaskRecord record, string requestJson, DateTimeOffset now)
    {
        if (record.Status == TaskState.Queued)
        {
            return record with
            {
                Status = TaskState.Interrupted,
                EndedAt = now,
                QueueReason = null,
                Error = new TaskError(ErrorCodes.Interrupted,
                    "The task could run only on the node that accepted it (its memory held the request's secrets, which are never stored), and that node left the fleet: create it again."),
            };
        }

        JournalFacts journal;
        try
        {
            journal = journals.UnfinishedFactsOf(record.Id);
        }
        catch (InvalidDataException)
        {
            journal = JournalFacts.None; // a journal that cannot be read: the record says less
        }

        return Interruption.Of(record, journal, journal.Tree, Interruption.MaxOutputBytes(requestJson, options.MaxOutputBytes), now, [],
            $"Node {record.Node} stopped renewing its lease on the task for {Lease.TotalSeconds:0.#} s (it stopped, or lost the database): the task was marked interrupted (agent runs are not retried); what is left of its tree is killed when the node is back.");
    }

    /// <summary>The record of a task whose request's secrets were in the memory of a process that is gone.</summary>
    public static TaskRecord SecretsLost(TaskRecord record, DateTimeOffset now) => record with
    {
        Status = TaskState.Interrupted,
        EndedAt = now,
        QueueReason = null,
        Error = new TaskError(ErrorCodes.Interrupted,
            "The node that accepted the task stopped while it was queued; its secrets are never stored, so it could not run as asked: create it again."),
    };
}
