using System.Diagnostics;

namespace Corral.Client;

public sealed partial class CorralClient
{
    /// <summary>
    /// Creates a task and waits for its end, up to <paramref name="timeout"/>: the server waits (<c>?wait=</c>, at most
    /// <see cref="CorralClientOptions.MaxServerWait"/> per request); a wait that ends early or a connection that drops is
    /// resumed with the same idempotency key, or without one by polling the task.
    /// </summary>
    /// <param name="request">What to run.</param>
    /// <param name="timeout">How long to wait for the end.</param>
    /// <param name="cancellationToken">Stops waiting (the task goes on: cancel it with <see cref="CancelTaskAsync"/>).</param>
    /// <returns>The final record; or, when <paramref name="timeout"/> passes first, the latest one (<see cref="CorralTask.IsTerminal"/> false).</returns>
    /// <exception cref="CorralApiException">The server refused the task (the same as <see cref="CreateTaskAsync"/>).</exception>
    /// <exception cref="CorralUnreachableException">No answer within <paramref name="timeout"/>.</exception>
    public async Task<CorralTask> RunTaskAsync(CreateTaskRequest request, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        request = WithKey(request);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var remaining = Remaining(timeout, clock);
            var wait = remaining < _options.MaxServerWait ? remaining : _options.MaxServerWait;
            CorralTask task;
            var asked = clock.Elapsed;
            try
            {
                using var response = await PostTaskAsync(request, wait, cancellationToken).ConfigureAwait(false);
                task = await ReadTaskAsync(response, cancellationToken).ConfigureAwait(false);
            }
            catch (CorralUnreachableException) when (request.IdempotencyKey is not null && Remaining(timeout, clock) > TimeSpan.Zero)
            {
                // The key makes the same POST find the same task (or create it, if the first never arrived).
                await Task.Delay(Min(_options.PollInterval, Remaining(timeout, clock)), cancellationToken).ConfigureAwait(false);
                continue;
            }

            if (task.IsTerminal || Remaining(timeout, clock) <= TimeSpan.Zero)
                return task;
            // Without a key, or from a server that did not hold the request for the wait (it answered in under half of it),
            // poll instead of asking again.
            if (request.IdempotencyKey is null || clock.Elapsed - asked < wait / 2)
                return await WaitForTaskAsync(task.Id, Remaining(timeout, clock), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Waits for a task's end by polling its record (every 100 ms at first, then less often, up to
    /// <see cref="CorralClientOptions.PollInterval"/>). A server that cannot be reached for a while (a restart) is
    /// waited for until <paramref name="timeout"/>.
    /// </summary>
    /// <param name="id">The task id.</param>
    /// <param name="timeout">How long to wait for the end.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The final record; or, when <paramref name="timeout"/> passes first, the latest one read.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">The server could not be reached, and no record was read before <paramref name="timeout"/>.</exception>
    public async Task<CorralTask> WaitForTaskAsync(string id, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        var pause = TimeSpan.FromMilliseconds(100);
        CorralTask? latest = null;
        while (true)
        {
            try
            {
                latest = await GetTaskAsync(id, cancellationToken).ConfigureAwait(false);
                if (latest.IsTerminal)
                    return latest;
            }
            catch (CorralException e) when (e is CorralUnreachableException or CorralServiceUnavailableException or CorralRateLimitedException
                                            && Remaining(timeout, clock) > TimeSpan.Zero)
            {
            }

            var remaining = Remaining(timeout, clock);
            if (remaining <= TimeSpan.Zero)
                return latest ?? await GetTaskAsync(id, cancellationToken).ConfigureAwait(false);
            await Task.Delay(Min(pause, remaining), cancellationToken).ConfigureAwait(false);
            pause = Min(pause * 2, _options.PollInterval);
        }
    }

    private static TimeSpan Remaining(TimeSpan timeout, Stopwatch clock) =>
        timeout - clock.Elapsed is { } left && left > TimeSpan.Zero ? left : TimeSpan.Zero;

    private static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}
