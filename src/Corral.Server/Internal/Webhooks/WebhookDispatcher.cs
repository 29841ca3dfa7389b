using System.Text.Json;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Threading.Channels;
using Corral.Server.Api;
using Corral.Server.Hosting;
using Corral.Server.Internal.Storage;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Corral.Server.Internal.Webhooks;

/// <summary>
/// Sends webhook deliveries. One loop writes what <see cref="WebhookOutbox"/> queued, in order, and sweeps (at start,
/// then every few seconds) deliveries still waiting for a task that the store says has ended: a process can die between
/// a task's end and its observers, and in a fleet another node may end it. Another loop claims due deliveries and POSTs
/// them, signed afresh on each attempt (same <c>webhook-id</c>, new <c>webhook-timestamp</c>), retrying with a jittered,
/// doubling backoff until one is taken (2xx) or <see cref="WebhookOptions.MaxAttempts"/> or
/// <see cref="WebhookOptions.MaxAgeSeconds"/> runs out. Redirects are not followed.
/// </summary>
internal sealed class WebhookDispatcher(IWebhookStore store, ITaskStore tasks, WebhookOutbox outbox, IHttpClientFactory clients,
    IOptions<CorralOptions> options, TimeProvider time, ILogger<WebhookDispatcher> logger) : BackgroundService
{
    /// <summary>The name of the <see cref="HttpClient"/> deliveries are sent with.</summary>
    public const string ClientName = "corral-webhooks";

    /// <summary>How often waiting deliveries are checked against the store, and pending ones looked for without a wake-up (another node's).</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(5);

    /// <summary>How many deliveries are sent at once.</summary>
    private const int Batch = 16;

    private readonly WebhookOptions _options = options.Value.Webhooks;
    private readonly Channel<bool> _wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });

    private TimeSpan Timeout => TimeSpan.FromSeconds(_options.TimeoutSeconds);

    /// <summary>How long a claim holds a delivery: longer than any attempt, short enough that a dead sender's deliveries go on soon.</summary>
    private TimeSpan Lease => Timeout * 2 + TimeSpan.FromSeconds(5);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!outbox.Enabled)
            return;
        await Task.Yield();
        await Task.WhenAll(RecordLoopAsync(stoppingToken), DeliverLoopAsync(stoppingToken)).ConfigureAwait(false);
    }

    private async Task RecordLoopAsync(CancellationToken stop)
    {
        var nextSweep = time.GetUtcNow();
        while (!stop.IsCancellationRequested)
        {
            try
            {
                if (time.GetUtcNow() >= nextSweep)
                {
                    await SweepAsync(stop).ConfigureAwait(false);
                    nextSweep = time.GetUtcNow() + PollInterval;
                }

                using var timer = new CancellationTokenSource(Positive(nextSweep - time.GetUtcNow()), time);
                using var either = CancellationTokenSource.CreateLinkedTokenSource(stop, timer.Token);
                try
                {
                    await outbox.Items.WaitToReadAsync(either.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    continue; // time to sweep
                }

                while (outbox.Items.TryPeek(out var item))
                {
                    await ApplyAsync(item, stop).ConfigureAwait(false);
                    outbox.Items.TryRead(out _);
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                // The database is unreachable or busy: the item stays at the head and is tried again.
                logger.LogWarning(e, "Webhook deliveries could not be recorded; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), time, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private async Task ApplyAsync(OutboxItem item, CancellationToken stop)
    {
        switch (item)
        {
            case OutboxItem.Add add:
                await store.AddAsync(add.Deliveries, stop).ConfigureAwait(false);
                if (add.Deliveries.Any(d => d.Payload is not null))
                    Wake();
                break;
            case OutboxItem.End end:
                await store.MarkPendingAsync(end.TaskId, end.Payload, end.At, stop).ConfigureAwait(false);
                await store.AddAsync(end.Deliveries, stop).ConfigureAwait(false); // the same ids: only what is missing
                Wake();
                break;
        }
    }

    /// <summary>Deliveries waiting for a task that has ended (or is gone) in the store.</summary>
    private async Task SweepAsync(CancellationToken stop)
    {
        foreach (string id in await store.WaitingTasksAsync(100, stop).ConfigureAwait(false))
        {
            TaskRecord? record;
            string? payload = null;
            var now = time.GetUtcNow();
            try
            {
                record = await tasks.GetAsync(id, stop).ConfigureAwait(false);
                if (record is { IsTerminal: true })
                    payload = WebhookOutbox.Payload(WebhookEvents.Ended, now, record);
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException)
            {
                // One record that cannot be read or written as JSON (a database of an older version) holds up no other.
                logger.LogError(e, "Task {Id}: its record cannot be made into a webhook payload; its deliveries are abandoned", id);
                await store.AbandonAsync(id, "the task's record could not be written as JSON", now, stop).ConfigureAwait(false);
                continue;
            }

            if (record is null)
            {
                await store.AbandonAsync(id, "the task was deleted before it ended", now, stop).ConfigureAwait(false);
            }
            else if (payload is not null && await store.MarkPendingAsync(id, payload, now, stop).ConfigureAwait(false) > 0)
            {
                logger.LogInformation("Task {Id}: its end webhooks are pending (found ended in the store)", id);
                Wake();
            }
        }
    }

    private void Wake() => _wake.Writer.TryWrite(true);

    private async Task DeliverLoopAsync(CancellationToken stop)
    {
        byte[] key = WebhookRules.ParseSecret(_options.Secret!).Key!;
        var client = clients.CreateClient(ClientName);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var due = await store.ClaimDueAsync(time.GetUtcNow(), Lease, Batch, stop).ConfigureAwait(false);
                if (due.Count > 0)
                {
                    await Task.WhenAll(due.Select(d => AttemptAsync(client, key, d, stop))).ConfigureAwait(false);
                    continue;
                }

                var next = await store.NextDueAsync(stop).ConfigureAwait(false);
                var wait = next is { } at ? Clamp(at - time.GetUtcNow()) : PollInterval;
                using var timer = new CancellationTokenSource(wait, time);
                using var either = CancellationTokenSource.CreateLinkedTokenSource(stop, timer.Token);
                try
                {
                    await _wake.Reader.ReadAsync(either.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!stop.IsCancellationRequested)
                {
                    // Due now, or time to look again.
                }
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Webhook deliveries could not be read; retrying");
                await Task.Delay(TimeSpan.FromSeconds(1), time, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    /// <summary>One attempt at one delivery, and its outcome recorded.</summary>
    private async Task AttemptAsync(HttpClient client, byte[] key, DueDelivery delivery, CancellationToken stop)
    {
        byte[] body = Encoding.UTF8.GetBytes(delivery.Payload);
        long timestamp = time.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, delivery.Url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.UserAgent.Add(new ProductInfoHeaderValue("Corral", null));
        request.Headers.TryAddWithoutValidation("webhook-id", delivery.Id);
        request.Headers.TryAddWithoutValidation("webhook-timestamp", timestamp.ToString(CultureInfo.InvariantCulture));
        request.Headers.TryAddWithoutValidation("webhook-signature", WebhookSignature.Sign(key, delivery.Id, timestamp, body));
        int? status = null;
        string? error = null;
        try
        {
            using var timer = new CancellationTokenSource(Timeout, time);
            using var either = CancellationTokenSource.CreateLinkedTokenSource(stop, timer.Token);
            using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, either.Token).ConfigureAwait(false);
            status = (int)response.StatusCode;
            if (!response.IsSuccessStatusCode)
                error = $"the receiver answered {status}";
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            return; // stopping: the claim runs out and the next start (or another node) tries again
        }
        catch (OperationCanceledException)
        {
            error = $"no answer within {_options.TimeoutSeconds.ToString(CultureInfo.InvariantCulture)} s";
        }
        catch (HttpRequestException e)
        {
            error = Short(e.Message);
        }

        var now = time.GetUtcNow();
        var outcome = error is null
            ? new AttemptOutcome(delivery.Id, WebhookDeliveryState.Delivered, now, status, null, null)
            : WebhookRules.NextAttempt(delivery.Attempts + 1, delivery.PendingSince, now, _options, 0.8 + (Random.Shared.NextDouble() * 0.4)) is { } next
                ? new AttemptOutcome(delivery.Id, WebhookDeliveryState.Pending, now, status, error, next)
                : new AttemptOutcome(delivery.Id, WebhookDeliveryState.Failed, now, status, error, null);
        if (outcome.State == WebhookDeliveryState.Failed)
            logger.LogWarning("Webhook {Id} of task {Task} failed after {Attempts} attempt(s): {Error}", delivery.Id, delivery.TaskId, delivery.Attempts + 1, error);
        else if (outcome.State == WebhookDeliveryState.Pending)
            logger.LogInformation("Webhook {Id} of task {Task}: attempt {Attempt} failed ({Error}); next at {Next:O}", delivery.Id, delivery.TaskId, delivery.Attempts + 1, error, outcome.NextAttemptAt);
        // Recorded before anything is claimed again (a busy or locked database is waited out), else the delivery would be
        // sent again at once; a stop in between leaves it pending, and a receiver may see it twice (the id tells).
        for (int failures = 0; ; failures++)
        {
            try
            {
                await store.RecordAttemptAsync(outcome, stop).ConfigureAwait(false);
                return;
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                if (failures == 0)
                    logger.LogWarning(e, "Webhook {Id}: the outcome of an attempt could not be recorded; retrying", delivery.Id);
                await Task.Delay(TimeSpan.FromSeconds(1), time, stop).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
        }
    }

    private static TimeSpan Clamp(TimeSpan wait) => wait < TimeSpan.FromMilliseconds(20) ? TimeSpan.FromMilliseconds(20) : wait > PollInterval ? PollInterval : wait;

    private static TimeSpan Positive(TimeSpan wait) => wait > TimeSpan.Zero ? wait : TimeSpan.FromMilliseconds(1);

    /// <summary>An error message short enough for a row and an API answer.</summary>
    private static string Short(string message) => message.Length <= 200 ? message : message[..200];
}
