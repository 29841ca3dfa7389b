using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Corral.Client.Internal;

namespace Corral.Client;

public sealed partial class CorralClient
{
    /// <summary>
    /// Creates a task (<c>POST /v1/tasks</c>) and returns its record at once, usually <see cref="CorralTaskStatus.Queued"/>
    /// or <see cref="CorralTaskStatus.Running"/>. A known <see cref="CreateTaskRequest.IdempotencyKey"/> returns the task
    /// it created before (the same body is required).
    /// </summary>
    /// <param name="request">What to run.</param>
    /// <param name="cancellationToken">Stops waiting; the task may still have been created.</param>
    /// <returns>The task's record.</returns>
    /// <exception cref="CorralValidationException">The request is wrong (<see cref="CorralApiException.Errors"/> names the fields).</exception>
    /// <exception cref="CorralConflictException"><c>session_busy</c> or <c>idempotency_conflict</c>.</exception>
    /// <exception cref="CorralRateLimitedException">The server is full (<c>busy</c>), after the client's own retries.</exception>
    /// <exception cref="CorralServiceUnavailableException"><c>agent_not_available</c>, <c>draining</c>, <c>storage_unavailable</c>.</exception>
    /// <exception cref="CorralStorageFullException">The server's disk is full.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task<CorralTask> CreateTaskAsync(CreateTaskRequest request, CancellationToken cancellationToken = default)
    {
        using var response = await PostTaskAsync(WithKey(request), wait: null, cancellationToken).ConfigureAwait(false);
        return await ReadTaskAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The task's record (<c>GET /v1/tasks/{id}</c>), in any state.</summary>
    /// <param name="id">The task id.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The record.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task<CorralTask> GetTaskAsync(string id, CancellationToken cancellationToken = default)
    {
        using var response = await SendCheckedAsync(Request(HttpMethod.Get, TaskPath(id)), cancellationToken).ConfigureAwait(false);
        return await ReadTaskAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>One page of tasks, newest first (<c>GET /v1/tasks</c>).</summary>
    /// <param name="query">Filters, page size and the cursor of the page; <c>null</c> for the first page of all tasks.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The page, with the cursor of the next one.</returns>
    /// <exception cref="CorralValidationException">A bad limit or cursor.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task<TaskPage> GetTaskPageAsync(TaskQuery? query = null, CancellationToken cancellationToken = default)
    {
        using var response = await SendCheckedAsync(Request(HttpMethod.Get, "v1/tasks" + QueryString(query)), cancellationToken).ConfigureAwait(false);
        var page = await ReadJsonAsync(response, cancellationToken).ConfigureAwait(false);
        var items = page.TryGetProperty("items", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Select(ClientJson.ReadTask).ToList()
            : [];
        string? next = page.TryGetProperty("nextCursor", out var cursor) && cursor.ValueKind == JsonValueKind.String ? cursor.GetString() : null;
        return new TaskPage(items, next);
    }

    /// <summary>Every task that matches, newest first, fetching pages as the enumeration goes.</summary>
    /// <param name="query">Filters and page size; its cursor, if any, is where the listing starts.</param>
    /// <param name="cancellationToken">Stops the listing.</param>
    /// <returns>The tasks.</returns>
    /// <exception cref="CorralValidationException">A bad limit or cursor.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async IAsyncEnumerable<CorralTask> ListTasksAsync(TaskQuery? query = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var next = query ?? new TaskQuery();
        while (true)
        {
            var page = await GetTaskPageAsync(next, cancellationToken).ConfigureAwait(false);
            foreach (var task in page.Items)
                yield return task;
            if (page.NextCursor is null || page.Items.Count == 0)
                yield break;
            next = next with { Cursor = page.NextCursor };
        }
    }

    /// <summary>
    /// Cancels a task (<c>POST /v1/tasks/{id}/cancel</c>; idempotent, so it is retried like a read). Claude gets an
    /// interrupt first (it keeps its partial text and cost), then the process ladder.
    /// </summary>
    /// <param name="id">The task id.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The record: still stopping (<see cref="CorralTask.IsTerminal"/> false), or final.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task<CorralTask> CancelTaskAsync(string id, CancellationToken cancellationToken = default)
    {
        using var response = await SendCheckedAsync(Request(HttpMethod.Post, TaskPath(id) + "/cancel", retrySafe: true), cancellationToken).ConfigureAwait(false);
        return await ReadTaskAsync(response, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Deletes a finished task with its files (<c>DELETE /v1/tasks/{id}</c>).</summary>
    /// <param name="id">The task id.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>Once the task is gone.</returns>
    /// <exception cref="CorralConflictException">The task is still queued or running (<c>task_active</c>): cancel it first.</exception>
    /// <exception cref="CorralNotFoundException">No such task (also when an earlier attempt of this call deleted it).</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task DeleteTaskAsync(string id, CancellationToken cancellationToken = default)
    {
        using var response = await SendCheckedAsync(Request(HttpMethod.Delete, TaskPath(id)), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The task's webhook deliveries, oldest first (<c>GET /v1/tasks/{id}/webhooks</c>): where each is, never its body.</summary>
    /// <param name="id">The task id.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>The deliveries (none when neither the task nor the server names a webhook).</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public async Task<IReadOnlyList<WebhookDelivery>> GetWebhooksAsync(string id, CancellationToken cancellationToken = default)
    {
        using var response = await SendCheckedAsync(Request(HttpMethod.Get, TaskPath(id) + "/webhooks"), cancellationToken).ConfigureAwait(false);
        var body = await ReadJsonAsync(response, cancellationToken).ConfigureAwait(false);
        return body.TryGetProperty("items", out var items) && items.ValueKind == JsonValueKind.Array
            ? items.EnumerateArray().Select(e => e.Deserialize<WebhookDelivery>(ClientJson.Options)!).ToList()
            : [];
    }

    /// <summary>The request with an idempotency key, when it has none and the options ask for one.</summary>
    private CreateTaskRequest WithKey(CreateTaskRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        return request.IdempotencyKey is null && _options.GenerateIdempotencyKeys
            ? request with { IdempotencyKey = "corral-client-" + Guid.NewGuid().ToString("N") }
            : request;
    }

    /// <summary>
    /// <c>POST /v1/tasks[?wait=S]</c>: the response when it carries a record (202, 200, and with a wait the outcome
    /// statuses 422, 504, 409, 502, 503, 507); a problem throws.
    /// </summary>
    private async Task<HttpResponseMessage> PostTaskAsync(CreateTaskRequest request, TimeSpan? wait, CancellationToken cancellationToken)
    {
        string path = "v1/tasks";
        TimeSpan? timeout = null;
        if (wait is { } w)
        {
            path += "?wait=" + w.TotalSeconds.ToString("0.###", CultureInfo.InvariantCulture);
            timeout = w + _options.RequestTimeout;
        }

        var message = Request(HttpMethod.Post, path, retrySafe: request.IdempotencyKey is not null, timeout);
        message.Content = JsonContent.Create(request, options: ClientJson.Options);
        var response = await SendAsync(message, cancellationToken).ConfigureAwait(false);
        if (response.IsSuccessStatusCode || (wait is not null && !Problems.IsProblem(response) && IsOutcomeStatus(response.StatusCode)))
            return response;
        using (response)
            throw Problems.Exception(await Problems.ReadAsync(response, cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The statuses <c>?wait</c> answers with a task's record: its outcome, not a refusal.</summary>
    private static bool IsOutcomeStatus(HttpStatusCode status) => (int)status is 422 or 504 or 409 or 502 or 503 or 507;

    private static string TaskPath(string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return "v1/tasks/" + Uri.EscapeDataString(id);
    }

    private static string QueryString(TaskQuery? query)
    {
        if (query is null)
            return "";
        var parts = new List<string>();
        if (query.Status is { } status)
            parts.Add("status=" + ClientJson.Name(status));
        if (query.SessionId is { } session)
            parts.Add("sessionId=" + Uri.EscapeDataString(session));
        if (query.Limit is { } limit)
            parts.Add("limit=" + limit.ToString(CultureInfo.InvariantCulture));
        if (query.Cursor is { } cursor)
            parts.Add("cursor=" + Uri.EscapeDataString(cursor));
        return parts.Count == 0 ? "" : "?" + string.Join('&', parts);
    }
}
