using System.Diagnostics;
using System.Globalization;
using System.Runtime.CompilerServices;
using Corral.Client.Events;
using Corral.Client.Internal;

namespace Corral.Client;

public sealed partial class CorralClient
{
    /// <summary>
    /// The task's events (<c>GET /v1/tasks/{id}/events</c>) from the first one after <paramref name="after"/>, live,
    /// ending after <see cref="TaskEndEvent"/>. A dropped connection, a silent one (see
    /// <see cref="CorralClientOptions.StreamIdleTimeout"/>) or a server restart is reconnected with <c>Last-Event-ID</c>:
    /// every event comes once, in order, without a gap.
    /// </summary>
    /// <param name="id">The task id.</param>
    /// <param name="after">The id of the last event already seen (0: from the start).</param>
    /// <param name="cancellationToken">Stops the stream.</param>
    /// <returns>The events.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">
    /// No event could be had for <see cref="CorralClientOptions.StreamReconnectWindow"/> (the server is gone).
    /// </exception>
    public async IAsyncEnumerable<CorralEvent> StreamEventsAsync(string id, long after = 0,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string path = TaskPath(id) + "/events";
        long last = after;
        int failures = 0;
        var failing = Stopwatch.StartNew(); // since the stream last made progress (or started)
        while (true)
        {
            Exception? failure = null;
            HttpResponseMessage? response = null;
            IAsyncEnumerator<SseFrame>? frames = null;
            try
            {
                var request = Request(HttpMethod.Get, path);
                request.Headers.Accept.ParseAdd("text/event-stream");
                if (last > 0)
                    request.Headers.Add("Last-Event-ID", last.ToString(CultureInfo.InvariantCulture));
                response = await SendCheckedAsync(request, cancellationToken, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
                var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                frames = SseReader.ReadAsync(body, _options.StreamIdleTimeout, cancellationToken).GetAsyncEnumerator(cancellationToken);
            }
            catch (Exception e) when (IsStreamInterruption(e, cancellationToken))
            {
                failure = e;
                response?.Dispose();
            }

            if (frames is not null)
            {
                var connected = Stopwatch.StartNew();
                bool progress = false;
                try
                {
                    while (true)
                    {
                        bool more;
                        try
                        {
                            more = await frames.MoveNextAsync().ConfigureAwait(false);
                        }
                        catch (Exception e) when (IsStreamInterruption(e, cancellationToken))
                        {
                            failure = e;
                            break;
                        }

                        if (!more)
                            break; // closed without task.end: the server is stopping; its next life goes on from here
                        var next = EventParser.Parse(frames.Current);
                        if (next.Id is { } n)
                        {
                            if (n <= last)
                                continue; // already seen (a server never sends these after Last-Event-ID; a proxy might)
                            last = n;
                        }

                        failures = 0;
                        progress = true;
                        yield return next;
                        if (next is TaskEndEvent)
                            yield break;
                    }
                }
                finally
                {
                    await frames.DisposeAsync().ConfigureAwait(false);
                    response!.Dispose();
                }

                // Progress: an event, or a connection that stayed up (a quiet task's stream, dropped after a while). A
                // server that answers and hangs up at once, again and again, makes none, and the window runs out.
                if (progress || connected.Elapsed >= MinimumUsefulConnection)
                    failing.Restart();
            }

            if (failing.Elapsed >= _options.StreamReconnectWindow)
            {
                throw failure as CorralUnreachableException ?? new CorralUnreachableException(
                    $"The event stream of {id} could not be resumed for {_options.StreamReconnectWindow.TotalSeconds:0.#} s.",
                    circuitOpen: false, null, failure);
            }

            await Task.Delay(ReconnectDelay(failure, failures++), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A connection that lasted this long counts as progress, even without an event.</summary>
    private static readonly TimeSpan MinimumUsefulConnection = TimeSpan.FromSeconds(5);

    /// <summary>What a reconnecting stream waits for: what the breaker or the server asked, else 0.1 s doubling to 5 s.</summary>
    private static TimeSpan ReconnectDelay(Exception? failure, int failures)
    {
        TimeSpan backoff = TimeSpan.FromMilliseconds(Math.Min(100 * Math.Pow(2, Math.Min(failures, 10)), 5000));
        var asked = failure switch
        {
            CorralUnreachableException { RetryAfter: { } wait } => wait,
            CorralApiException { RetryAfter: { } wait } => wait,
            _ => TimeSpan.Zero,
        };
        return asked > backoff ? asked : backoff;
    }

    /// <summary>Whether the stream should reconnect: no answer, a broken or silent connection, a server that asks to come back.</summary>
    private static bool IsStreamInterruption(Exception e, CancellationToken cancellationToken) =>
        !cancellationToken.IsCancellationRequested
        && (e is CorralUnreachableException or CorralRateLimitedException or SseReader.IdleException
            || (e is CorralServiceUnavailableException unavailable && unavailable.Code != CorralErrorCodes.AgentNotAvailable)
            || Unreachable(e, cancellationToken) is not null);
}
