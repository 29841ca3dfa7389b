using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Corral.Testing.FakeAnthropic;

/// <summary>
/// A fake Anthropic Messages API on real Kestrel at <c>http://127.0.0.1:&lt;free port&gt;</c>, for running the real
/// Claude Code CLI against (<c>ANTHROPIC_BASE_URL=</c><see cref="BaseUrl"/>). It records every request and answers
/// <c>POST /v1/messages</c> from a script: first the replies queued with <see cref="Enqueue"/>, in order, then
/// <see cref="Responder"/>; a request with neither gets HTTP 400 and a <see cref="Faults"/> entry.
/// </summary>
/// <remarks>
/// Other routes: <c>POST /v1/messages/count_tokens</c>, <c>GET /v1/models[/{id}]</c>, <c>HEAD|GET /api/hello</c>
/// (Claude Code's reachability probe when non-essential traffic is not disabled). Anything else is recorded and
/// answered 404 (<see cref="UnhandledRequests"/>). The responder may be called concurrently.
/// </remarks>
/// <example>
/// <code>
/// await using var api = await FakeAnthropicServer.StartAsync();
/// api.Enqueue(FakeReply.Bash("echo hi"), FakeReply.Text("Done."));
/// // run: ANTHROPIC_BASE_URL=api.BaseUrl ANTHROPIC_API_KEY=FakeAnthropicServer.DefaultApiKey claude -p …
/// var second = await api.WaitForMessagesAsync(count: 2, TimeSpan.FromSeconds(60));
/// Assert.Equal("hi", second.LatestToolResults.Single().Text);
/// </code>
/// </example>
public sealed class FakeAnthropicServer : IAsyncDisposable
{
    /// <summary>The API key tests should give the CLI (any non-empty value works unless <see cref="ExpectedApiKey"/> is set).</summary>
    public const string DefaultApiKey = "sk-ant-api03-fake-corral-test-key";

    /// <summary>Model ids listed by <c>GET /v1/models</c>.</summary>
    public static readonly IReadOnlyList<string> ListedModels = ["claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5"];

    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _lock = new();
    private readonly List<RecordedRequest> _requests = [];
    private readonly List<Waiter> _waiters = [];
    private readonly Queue<FakeReply> _queue = new();
    private readonly List<Exception> _faults = [];
    private int _sequence;
    private int _disposed;

    private FakeAnthropicServer(WebApplication app) => _app = app;

    /// <summary>The base URL, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash): the value for <c>ANTHROPIC_BASE_URL</c>.</summary>
    public string BaseUrl { get; private set; } = "";

    /// <summary>The TCP port on 127.0.0.1.</summary>
    public int Port { get; private set; }

    /// <summary>Called for a <c>POST /v1/messages</c> when the queue is empty; return <c>null</c> for "not scripted".</summary>
    public Func<MessagesRequest, FakeReply?>? Responder { get; set; }

    /// <summary>When set, requests whose <c>x-api-key</c> (or <c>Authorization: Bearer</c>) differs get HTTP 401.</summary>
    public string? ExpectedApiKey { get; set; }

    /// <summary>Starts the server on a free loopback port.</summary>
    /// <param name="responder">Optional <see cref="Responder"/>, e.g. <see cref="FakeScript.ByTurn"/>.</param>
    /// <param name="cancellationToken">Cancels the start.</param>
    public static async Task<FakeAnthropicServer> StartAsync(
        Func<MessagesRequest, FakeReply?>? responder = null, CancellationToken cancellationToken = default)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            ApplicationName = typeof(FakeAnthropicServer).Assembly.GetName().Name,
            ContentRootPath = AppContext.BaseDirectory,
        });
        // Nothing from the test's appsettings/environment (e.g. a "Kestrel:Endpoints" section meant for the server
        // under test), no log output, no Ctrl+C/SIGTERM hooks in the test process.
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.Services.AddSingleton<IHostLifetime, NoopLifetime>();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0);
            kestrel.Limits.MaxRequestBodySize = null;
            kestrel.Limits.MinResponseDataRate = null; // slow and hanging replies are the point
            kestrel.AddServerHeader = false;
        });
        var app = builder.Build();
        var server = new FakeAnthropicServer(app) { Responder = responder };
        app.Run(server.HandleAsync);
        await app.StartAsync(cancellationToken).ConfigureAwait(false);
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>()
            .Addresses.First();
        var uri = new Uri(address);
        server.Port = uri.Port;
        server.BaseUrl = $"http://127.0.0.1:{uri.Port}";
        return server;
    }

    /// <summary>Queues replies for the next <c>POST /v1/messages</c> requests, in order (before <see cref="Responder"/>).</summary>
    public void Enqueue(params FakeReply[] replies)
    {
        lock (_lock)
        {
            foreach (var reply in replies)
                _queue.Enqueue(reply ?? throw new ArgumentNullException(nameof(replies)));
        }
    }

    /// <summary>How many queued replies are still unused.</summary>
    public int PendingReplies
    {
        get { lock (_lock) return _queue.Count; }
    }

    /// <summary>Every request received so far, in arrival order.</summary>
    public IReadOnlyList<RecordedRequest> Requests
    {
        get { lock (_lock) return _requests.ToArray(); }
    }

    /// <summary>The <c>POST /v1/messages</c> requests received so far, in arrival order.</summary>
    public IReadOnlyList<MessagesRequest> MessagesRequests => Requests.Select(r => r.Messages).OfType<MessagesRequest>().ToArray();

    /// <summary>Requests that no route handled (answered 404).</summary>
    public IReadOnlyList<RecordedRequest> UnhandledRequests => Requests.Where(r => !r.Handled).ToArray();

    /// <summary>Problems on the fake's side: unscripted requests, responder exceptions, write failures. Tests should expect none.</summary>
    public IReadOnlyList<Exception> Faults
    {
        get { lock (_lock) return _faults.ToArray(); }
    }

    /// <summary>Waits for a recorded request matching <paramref name="predicate"/> (including ones already received).</summary>
    /// <exception cref="TimeoutException">None arrived in time; the message lists what did arrive.</exception>
    public async Task<RecordedRequest> WaitForRequestAsync(
        Func<RecordedRequest, bool> predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predicate);
        var waiter = new Waiter(predicate);
        RecordedRequest[] snapshot;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed != 0, this);
            snapshot = _requests.ToArray();
            _waiters.Add(waiter);
        }

        // Predicates run outside the lock (they may read Requests); a request added meanwhile reaches the waiter.
        if (snapshot.FirstOrDefault(predicate) is { } existing)
            waiter.Completion.TrySetResult(existing);

        try
        {
            return await waiter.Completion.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException(
                $"FakeAnthropicServer: no matching request within {timeout.TotalSeconds:0.#} s. Received: " +
                (Requests.Count == 0 ? "nothing" : string.Join(", ", Requests)));
        }
        finally
        {
            lock (_lock) _waiters.Remove(waiter);
        }
    }

    /// <summary>Waits for a <c>POST /v1/messages</c> matching <paramref name="predicate"/> (any, when <c>null</c>).</summary>
    public async Task<MessagesRequest> WaitForMessagesAsync(
        Func<MessagesRequest, bool>? predicate, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var record = await WaitForRequestAsync(r => r.Messages is { } m && (predicate is null || predicate(m)), timeout, cancellationToken)
            .ConfigureAwait(false);
        return record.Messages!;
    }

    /// <summary>Waits until <paramref name="count"/> <c>POST /v1/messages</c> requests arrived and returns the last of them.</summary>
    public async Task<MessagesRequest> WaitForMessagesAsync(int count, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var record = await WaitForRequestAsync(
            r => r.Messages is not null && Requests.Count(x => x.Messages is not null && x.Sequence <= r.Sequence) == count,
            timeout, cancellationToken).ConfigureAwait(false);
        return record.Messages!;
    }

    /// <summary>Stops in-flight replies (hanging ones end as <see cref="ReplyOutcome.ServerStopped"/>) and shuts Kestrel down.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        await _stopping.CancelAsync().ConfigureAwait(false);
        using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5)))
        {
            try
            {
                await _app.StopAsync(bound.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Connections still open after the bound are dropped by DisposeAsync.
            }
        }

        await _app.DisposeAsync().ConfigureAwait(false);
        Waiter[] waiters;
        lock (_lock)
        {
            waiters = _waiters.ToArray();
            _waiters.Clear();
        }

        foreach (var waiter in waiters)
            waiter.Completion.TrySetException(new ObjectDisposedException(nameof(FakeAnthropicServer)));
        _stopping.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        string body;
        using (var reader = new StreamReader(request.Body, Encoding.UTF8))
            body = await reader.ReadToEndAsync(context.RequestAborted).ConfigureAwait(false);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, values) in request.Headers)
            headers[name] = values.ToString();

        RecordedRequest record;
        lock (_lock)
            record = new RecordedRequest(++_sequence, request.Method, request.Path.Value ?? "/", request.QueryString.Value ?? "",
                headers, body, DateTimeOffset.UtcNow);

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        var ct = linked.Token;
        try
        {
            var respond = Route(context, record);
            Add(record);
            await respond(ct).ConfigureAwait(false);
            record.MarkFinished(ReplyOutcome.Completed);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            record.MarkFinished(ReplyOutcome.ClientDisconnected);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            record.MarkFinished(ReplyOutcome.ServerStopped);
            context.Abort();
        }
        catch (Exception e) when (context.RequestAborted.IsCancellationRequested && e is IOException or ObjectDisposedException)
        {
            record.MarkFinished(ReplyOutcome.ClientDisconnected);
        }
        catch (Exception e)
        {
            AddFault(new InvalidOperationException($"FakeAnthropicServer: answering {record} failed: {e.Message}", e));
            record.MarkFinished(ReplyOutcome.Faulted);
            if (!context.Response.HasStarted)
                await WriteErrorAsync(context, new FakeError(500, "api_error", "FakeAnthropicServer fault: " + e.Message), CancellationToken.None)
                    .ConfigureAwait(false);
            else
                context.Abort();
        }
        finally
        {
            Add(record); // no-op when already added; covers a Route() that threw
        }
    }

    /// <summary>Picks the handler (and, for messages, the reply) before the record becomes visible to waiters.</summary>
    private Func<CancellationToken, Task> Route(HttpContext context, RecordedRequest record)
    {
        var method = record.Method;
        var path = record.Path.TrimEnd('/');
        record.Handled = true;

        if (ExpectedApiKey is { } key && (path.StartsWith("/v1/", StringComparison.Ordinal)))
        {
            var given = record.Header("x-api-key")
                ?? (record.Header("authorization") is { } auth && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? auth[7..] : null);
            if (given != key)
                return ct => WriteErrorAsync(context, new FakeError(401, "authentication_error", "invalid x-api-key"), ct);
        }

        if (HttpMethods.IsPost(method) && path == "/v1/messages")
        {
            if (record.Json is not JsonObject json)
                return ct => WriteErrorAsync(context, new FakeError(400, "invalid_request_error", "body is not a JSON object"), ct);
            var messages = new MessagesRequest(record, json);
            record.Messages = messages;
            var reply = NextReply(messages);
            record.Reply = reply;
            return ct => WriteReplyAsync(context, record, messages, reply, ct);
        }

        if (HttpMethods.IsPost(method) && path == "/v1/messages/count_tokens")
            return ct => WriteJsonAsync(context, 200, new JsonObject { ["input_tokens"] = Math.Max(1, record.Body.Length / 4) }, ct);

        if (HttpMethods.IsGet(method) && path == "/v1/models")
        {
            var data = new JsonArray(ListedModels.Select(m => (JsonNode)ModelJson(m)).ToArray());
            return ct => WriteJsonAsync(context, 200, new JsonObject
            {
                ["data"] = data,
                ["has_more"] = false,
                ["first_id"] = ListedModels[0],
                ["last_id"] = ListedModels[^1],
            }, ct);
        }

        if (HttpMethods.IsGet(method) && path.StartsWith("/v1/models/", StringComparison.Ordinal))
            return ct => WriteJsonAsync(context, 200, ModelJson(path["/v1/models/".Length..]), ct);

        if ((HttpMethods.IsHead(method) || HttpMethods.IsGet(method)) && path == "/api/hello")
            return _ =>
            {
                context.Response.StatusCode = 200;
                return Task.CompletedTask;
            };

        record.Handled = false;
        return ct => WriteErrorAsync(context, new FakeError(404, "not_found_error", $"FakeAnthropicServer has no route for {method} {path}"), ct);
    }

    private FakeReply NextReply(MessagesRequest messages)
    {
        lock (_lock)
        {
            if (_queue.TryDequeue(out var queued))
                return queued;
        }

        var reply = Responder?.Invoke(messages);
        if (reply is not null)
            return reply;
        AddFault(new InvalidOperationException(
            $"FakeAnthropicServer: no reply scripted for {messages.Record} (queue empty, responder null or returned null)."));
        return FakeReply.InvalidRequest($"FakeAnthropicServer: no reply scripted for request #{messages.Record.Sequence}");
    }

    private static async Task WriteReplyAsync(HttpContext context, RecordedRequest record, MessagesRequest request, FakeReply reply, CancellationToken ct)
    {
        if (reply.DelayBeforeResponse > TimeSpan.Zero)
            await Task.Delay(reply.DelayBeforeResponse, ct).ConfigureAwait(false);
        var requestId = "req_fake_" + record.Sequence;
        context.Response.Headers["request-id"] = requestId;
        foreach (var (name, value) in reply.Headers)
            context.Response.Headers[name] = value;

        if (reply.HttpError is { } error)
        {
            record.MarkStreamStarted();
            await WriteErrorAsync(context, error, ct).ConfigureAwait(false);
            return;
        }

        var messageId = $"msg_fake_{record.Sequence}_{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";
        var model = reply.Model ?? request.Model ?? "claude-fake";
        if (request.Stream)
            await new SseWriter(context, record, reply, ct).WriteAsync(messageId, model).ConfigureAwait(false);
        else
        {
            if (reply.Gate is { } gate)
                await gate.WaitAsync(ct).ConfigureAwait(false);
            record.MarkStreamStarted();
            await WriteJsonAsync(context, 200, MessageJson(reply, messageId, model), ct).ConfigureAwait(false);
        }
    }

    /// <summary>The complete (non-streaming) message object for a reply.</summary>
    internal static JsonObject MessageJson(FakeReply reply, string messageId, string model)
    {
        var content = new JsonArray();
        foreach (var block in reply.Content)
        {
            content.Add(block switch
            {
                FakeBlock.Text text => new JsonObject { ["type"] = "text", ["text"] = text.Value },
                FakeBlock.ToolUse tool => new JsonObject
                {
                    ["type"] = "tool_use", ["id"] = tool.Id, ["name"] = tool.Name, ["input"] = tool.Input.DeepClone(),
                },
                _ => throw new NotSupportedException(block.GetType().Name),
            });
        }

        return new JsonObject
        {
            ["id"] = messageId,
            ["type"] = "message",
            ["role"] = "assistant",
            ["model"] = model,
            ["content"] = content,
            ["stop_reason"] = reply.EffectiveStopReason,
            ["stop_sequence"] = null,
            ["usage"] = Usage(reply.InputTokens, reply.OutputTokens),
        };
    }

    internal static JsonObject Usage(int input, int output) => new()
    {
        ["input_tokens"] = input,
        ["cache_creation_input_tokens"] = 0,
        ["cache_read_input_tokens"] = 0,
        ["output_tokens"] = output,
    };

    private static JsonObject ModelJson(string id) => new()
    {
        ["type"] = "model",
        ["id"] = id,
        ["display_name"] = id,
        ["created_at"] = "2026-01-01T00:00:00Z",
    };

    private static Task WriteErrorAsync(HttpContext context, FakeError error, CancellationToken ct) =>
        WriteJsonAsync(context, error.Status, ErrorJson(error), ct);

    internal static JsonObject ErrorJson(FakeError error) => new()
    {
        ["type"] = "error",
        ["error"] = new JsonObject { ["type"] = error.Type, ["message"] = error.Message },
    };

    private static async Task WriteJsonAsync(HttpContext context, int status, JsonNode json, CancellationToken ct)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(json.ToJsonString(), ct).ConfigureAwait(false);
    }

    private void Add(RecordedRequest record)
    {
        Waiter[] waiters;
        lock (_lock)
        {
            if (_requests.Contains(record))
                return;
            _requests.Add(record);
            waiters = _waiters.ToArray();
        }

        foreach (var waiter in waiters)
        {
            try
            {
                if (waiter.Predicate(record))
                    waiter.Completion.TrySetResult(record);
            }
            catch (Exception e)
            {
                waiter.Completion.TrySetException(e);
            }
        }
    }

    private void AddFault(Exception fault)
    {
        lock (_lock) _faults.Add(fault);
    }

    private sealed class NoopLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class Waiter(Func<RecordedRequest, bool> predicate)
    {
        public Func<RecordedRequest, bool> Predicate { get; } = predicate;
        public TaskCompletionSource<RecordedRequest> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>Writes one reply as the Messages API's SSE stream.</summary>
    private sealed class SseWriter(HttpContext context, RecordedRequest record, FakeReply reply, CancellationToken ct)
    {
        private int _deltas;

        public async Task WriteAsync(string messageId, string model)
        {
            var response = context.Response;
            response.StatusCode = 200;
            response.ContentType = "text/event-stream; charset=utf-8";
            response.Headers.CacheControl = "no-cache";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();

            await SendAsync("message_start", new JsonObject
            {
                ["type"] = "message_start",
                ["message"] = new JsonObject
                {
                    ["id"] = messageId,
                    ["type"] = "message",
                    ["role"] = "assistant",
                    ["model"] = model,
                    ["content"] = new JsonArray(),
                    ["stop_reason"] = null,
                    ["stop_sequence"] = null,
                    ["usage"] = Usage(reply.InputTokens, 1),
                },
            }).ConfigureAwait(false);
            await SendAsync("ping", new JsonObject { ["type"] = "ping" }).ConfigureAwait(false);
            record.MarkStreamStarted();

            if (reply.StreamError is { } error)
            {
                await SendAsync("error", ErrorJson(error)).ConfigureAwait(false);
                return;
            }

            for (var index = 0; index < reply.Content.Count; index++)
            {
                switch (reply.Content[index])
                {
                    case FakeBlock.Text text:
                        await SendAsync("content_block_start", BlockStart(index, new JsonObject { ["type"] = "text", ["text"] = "" }))
                            .ConfigureAwait(false);
                        foreach (var piece in Split(text.Value, text.Chunks))
                            await DeltaAsync(index, new JsonObject { ["type"] = "text_delta", ["text"] = piece }).ConfigureAwait(false);
                        break;
                    case FakeBlock.ToolUse tool:
                        await SendAsync("content_block_start", BlockStart(index, new JsonObject
                        {
                            ["type"] = "tool_use", ["id"] = tool.Id, ["name"] = tool.Name, ["input"] = new JsonObject(),
                        })).ConfigureAwait(false);
                        foreach (var piece in Split(tool.Input.ToJsonString(), tool.JsonChunks))
                            await DeltaAsync(index, new JsonObject { ["type"] = "input_json_delta", ["partial_json"] = piece })
                                .ConfigureAwait(false);
                        break;
                    default:
                        throw new NotSupportedException(reply.Content[index].GetType().Name);
                }

                await SendAsync("content_block_stop", new JsonObject { ["type"] = "content_block_stop", ["index"] = index })
                    .ConfigureAwait(false);
            }

            if (_deltas == 0 && reply.Gate is { } gate)
                await gate.WaitAsync(ct).ConfigureAwait(false);

            await SendAsync("message_delta", new JsonObject
            {
                ["type"] = "message_delta",
                ["delta"] = new JsonObject { ["stop_reason"] = reply.EffectiveStopReason, ["stop_sequence"] = null },
                ["usage"] = new JsonObject { ["output_tokens"] = reply.OutputTokens },
            }).ConfigureAwait(false);
            await SendAsync("message_stop", new JsonObject { ["type"] = "message_stop" }).ConfigureAwait(false);
        }

        private static JsonObject BlockStart(int index, JsonObject block) =>
            new() { ["type"] = "content_block_start", ["index"] = index, ["content_block"] = block };

        private async Task DeltaAsync(int index, JsonObject delta)
        {
            if (_deltas > 0 && reply.ChunkDelay > TimeSpan.Zero)
                await Task.Delay(reply.ChunkDelay, ct).ConfigureAwait(false);
            await SendAsync("content_block_delta", new JsonObject { ["type"] = "content_block_delta", ["index"] = index, ["delta"] = delta })
                .ConfigureAwait(false);
            if (++_deltas == 1 && reply.Gate is { } gate)
                await gate.WaitAsync(ct).ConfigureAwait(false);
        }

        private async Task SendAsync(string eventName, JsonObject data)
        {
            ct.ThrowIfCancellationRequested();
            await context.Response.WriteAsync($"event: {eventName}\ndata: {data.ToJsonString()}\n\n", ct).ConfigureAwait(false);
            await context.Response.Body.FlushAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>Splits <paramref name="text"/> into at most <paramref name="parts"/> non-empty pieces, never inside a surrogate pair.</summary>
    internal static IReadOnlyList<string> Split(string text, int parts)
    {
        if (text.Length == 0)
            return [];
        parts = Math.Clamp(parts, 1, text.Length);
        var pieces = new List<string>(parts);
        var start = 0;
        for (var i = 1; i <= parts; i++)
        {
            var end = i == parts ? text.Length : (int)((long)text.Length * i / parts);
            if (end < text.Length && end > start && char.IsHighSurrogate(text[end - 1]))
                end++;
            if (end > start)
                pieces.Add(text[start..end]);
            start = Math.Max(start, end);
        }

        return pieces;
    }
}
