using System.Collections.Concurrent;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Corral.Server.Internal.Storage.Postgres;

/// <summary>
/// The fleet's wake-ups: one connection per node that <c>LISTEN</c>s on the Corral channels and turns notifications
/// into completed tasks (a journal written, a task ended) and callbacks (a task queued, a cancel asked for). The
/// connection is re-established with backoff when it drops; every waiter is woken then, since notifications sent in
/// between are lost, and callers poll as a safety net anyway.
/// </summary>
internal sealed class PostgresNotifications(NpgsqlDataSource db, TimeProvider time, ILogger<PostgresNotifications> logger) : BackgroundService
{
    public const string Queue = "corral_queue";
    public const string Journal = "corral_journal";
    public const string Cancel = "corral_cancel";
    public const string End = "corral_end";
    public const string Feed = "corral_feed";
    public const string ProcessesAsked = "corral_processes_ask";
    public const string ProcessesTold = "corral_processes";

    /// <summary>The longest a journal or end waiter waits for a notification before it looks for itself.</summary>
    private static readonly TimeSpan Poll = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<string, TaskCompletionSource> _journals = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _ends = new(StringComparer.Ordinal);
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>A task was queued somewhere in the fleet, or notifications may have been missed (a reconnect).</summary>
    public event Action? Queued;

    /// <summary>A caller on some node asked to cancel a running task (its id).</summary>
    public event Action<string>? CancelRequested;

    /// <summary>An item of some node's live feed (its payload).</summary>
    public event Action<string>? FeedItem;

    /// <summary>A node asked the owner of a running task for its live processes (the question's payload).</summary>
    public event Action<string>? ProcessesQuestion;

    /// <summary>An owner's answer to a question about a task's processes (its payload).</summary>
    public event Action<string>? ProcessesAnswer;

    /// <summary>Completes once the first <c>LISTEN</c> is in place.</summary>
    public Task Listening => _listening.Task;

    /// <summary>Completes when task <paramref name="id"/>'s journal is next written by any node, or after a second.</summary>
    public Task JournalChanged(string id) => Wait(_journals, id);

    /// <summary>Completes when task <paramref name="id"/> next ends on any node, or after a second.</summary>
    public Task Ended(string id) => Wait(_ends, id);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = TimeSpan.FromMilliseconds(100);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await using var connection = await db.OpenConnectionAsync(stoppingToken).ConfigureAwait(false);
                connection.Notification += (_, e) => Dispatch(e.Channel, e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {Queue}; LISTEN {Journal}; LISTEN {Cancel}; LISTEN {End}; LISTEN {Feed}; LISTEN {ProcessesAsked}; LISTEN {ProcessesTold}", connection))
                    await listen.ExecuteNonQueryAsync(stoppingToken).ConfigureAwait(false);
                _listening.TrySetResult();
                WakeAll(); // what was sent while nobody listened is lost: everyone looks again
                delay = TimeSpan.FromMilliseconds(100);
                while (!stoppingToken.IsCancellationRequested)
                {
                    // A quiet connection is checked every few seconds: a dead one must not silence the node.
                    if (!await connection.WaitAsync(TimeSpan.FromSeconds(5), stoppingToken).ConfigureAwait(false))
                    {
                        await using var ping = new NpgsqlCommand("SELECT 1", connection);
                        await ping.ExecuteScalarAsync(stoppingToken).ConfigureAwait(false);
                    }
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or IOException or TimeoutException or InvalidOperationException)
            {
                logger.LogWarning("The notification connection to the task database dropped ({Message}); reconnecting in {Delay} ms", e.Message, delay.TotalMilliseconds);
                WakeAll();
                try
                {
                    await Task.Delay(delay, time, stoppingToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                delay = TimeSpan.FromMilliseconds(Math.Min(delay.TotalMilliseconds * 2, 2000));
            }
        }
    }

    /// <summary>A JSON payload a node sent; <c>null</c> when it is not one this version reads (the fleet's messages are best effort).</summary>
    public static T? Read<T>(string payload) where T : class
    {
        try
        {
            return System.Text.Json.JsonSerializer.Deserialize<T>(payload, ApiJson.Options);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    private void Dispatch(string channel, string payload)
    {
        switch (channel)
        {
            case Queue:
                Queued?.Invoke();
                break;
            case Journal:
                Complete(_journals, payload);
                break;
            case End:
                Complete(_ends, payload);
                Complete(_journals, payload); // the last word of its journal is written: no waiter of it is left behind
                break;
            case Cancel:
                CancelRequested?.Invoke(payload);
                break;
            case Feed:
                FeedItem?.Invoke(payload);
                break;
            case ProcessesAsked:
                ProcessesQuestion?.Invoke(payload);
                break;
            case ProcessesTold:
                ProcessesAnswer?.Invoke(payload);
                break;
        }
    }

    private Task Wait(ConcurrentDictionary<string, TaskCompletionSource> waiters, string id)
    {
        var signal = waiters.GetOrAdd(id, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        return Task.WhenAny(signal, Task.Delay(Poll, time));
    }

    private static void Complete(ConcurrentDictionary<string, TaskCompletionSource> waiters, string id)
    {
        if (waiters.TryRemove(id, out var signal))
            signal.TrySetResult();
    }

    private void WakeAll()
    {
        foreach (var id in _journals.Keys)
            Complete(_journals, id);
        foreach (var id in _ends.Keys)
            Complete(_ends, id);
        Queued?.Invoke();
    }
}
