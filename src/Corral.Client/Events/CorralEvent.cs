using System.Text.Json;

namespace Corral.Client.Events;

/// <summary>
/// One event of a task's stream (<c>GET /v1/tasks/{id}/events</c>). Match on the subtype; <see cref="Data"/> has the
/// event's JSON as sent, also for fields (and events: <see cref="UnknownEvent"/>) this client does not model.
/// </summary>
public abstract record CorralEvent
{
    /// <summary>The event's per-task sequence number (1, 2, 3, …); <c>null</c> only for a <c>task.end</c> a server made up for old data.</summary>
    public long? Id { get; init; }

    /// <summary>The event's name on the wire, e.g. <c>agent.text</c>.</summary>
    public string Name { get; init; } = "";

    /// <summary>The event's data as sent.</summary>
    public JsonElement Data { get; init; }
}
