using System.Collections.Concurrent;
using System.Text.Json;
using Corral.Processes;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Postgres;
using Microsoft.Extensions.Logging;

namespace Corral.Server.Internal.Fleet;

/// <summary>
/// A running task's live processes seen from any node: only the node that runs a task can read its tree in /proc,
/// so another node asks it through a notification and waits a moment for the answer (no answer: an empty list, as
/// for a tree that just ended). An answer fits a notification: past PostgreSQL's payload limit the list is cut.
/// </summary>
internal sealed class FleetProcesses
{
    private const int MaxPayload = 7_900;
    private static readonly TimeSpan AnswerWithin = TimeSpan.FromSeconds(2);

    private readonly FleetNode _fleet;
    private readonly TimeProvider _time;
    private readonly ILogger<FleetProcesses> _logger;
    private readonly ConcurrentDictionary<string, TaskCompletionSource<List<LiveProcess>>> _asked = new(StringComparer.Ordinal);
    private Func<string, IReadOnlyList<LiveProcess>?> _local = _ => null;

    public FleetProcesses(FleetNode fleet, TimeProvider time, ILogger<FleetProcesses> logger)
    {
        (_fleet, _time, _logger) = (fleet, time, logger);
        fleet.Notifications.ProcessesQuestion += Answer;
        fleet.Notifications.ProcessesAnswer += Told;
    }

    /// <summary>Where this node finds the live processes of a task it runs (the scheduler's trees).</summary>
    public void AnswerFrom(Func<string, IReadOnlyList<LiveProcess>?> local) => _local = local;

    /// <summary>Task <paramref name="id"/>'s processes, asked of <paramref name="node"/>, which runs it; empty when it does not answer in time.</summary>
    public async Task<List<LiveProcess>> AskAsync(string id, string node, CancellationToken cancellationToken)
    {
        string ask = Guid.NewGuid().ToString("N");
        var answer = new TaskCompletionSource<List<LiveProcess>>(TaskCreationOptions.RunContinuationsAsynchronously);
        _asked[ask] = answer;
        try
        {
            await _fleet.Store.NotifyAsync(PostgresNotifications.ProcessesAsked, JsonSerializer.Serialize(new Question(ask, id, node), ApiJson.Options)).ConfigureAwait(false);
            return await answer.Task.WaitAsync(AnswerWithin, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is TimeoutException or StoreException or Npgsql.NpgsqlException)
        {
            return [];
        }
        finally
        {
            _asked.TryRemove(ask, out _);
        }
    }

    private void Answer(string payload)
    {
        if (PostgresNotifications.Read<Question>(payload) is not { Node: { } node, Id: { } id, Ask: { } ask } || node != _fleet.Node || _local(id) is not { } processes)
            return;
        var list = processes.ToList();
        string json;
        while ((json = JsonSerializer.Serialize(new Reply(ask, list), ApiJson.Options)).Length > MaxPayload && list.Count > 0)
            list.RemoveRange(list.Count - Math.Max(1, list.Count / 8), Math.Max(1, list.Count / 8));
        _ = Task.Run(async () =>
        {
            try
            {
                await _fleet.Store.NotifyAsync(PostgresNotifications.ProcessesTold, json).ConfigureAwait(false);
            }
            catch (Exception e) when (e is StoreException or OperationCanceledException or Npgsql.NpgsqlException)
            {
                _logger.LogDebug("The processes of task {Id} were not told: {Message}", id, e.Message);
            }
        });
    }

    private void Told(string payload)
    {
        if (PostgresNotifications.Read<Reply>(payload) is { Ask: { } ask, Processes: { } processes } && _asked.TryGetValue(ask, out var answer))
            answer.TrySetResult(processes);
    }

    private sealed record Question(string Ask, string Id, string Node);

    private sealed record Reply(string Ask, List<LiveProcess> Processes);
}
