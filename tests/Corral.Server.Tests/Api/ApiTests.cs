using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Api;

/// <summary>Request validation, idempotency, listing, SSE replay, OpenAPI.</summary>
public sealed class ApiTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private readonly HttpClient _http = shared.Server.Http;

    [Theory(Timeout = 120_000)]
    [InlineData("{not json", "not valid JSON")]
    [InlineData("[1,2]", "wrong type")]
    [InlineData("null", "must be a JSON object")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","timeout_s":5}""", "timeout_s")]
    [InlineData("""{"prompt":"hi"}""", "agent: required")]
    [InlineData("""{"agent":"aider","prompt":"hi"}""", "unknown agent")]
    [InlineData("""{"agent":"claude-code"}""", "prompt: required")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","command":["ls"]}""", "command: only for the command agent")]
    [InlineData("""{"agent":"command"}""", "command: required")]
    [InlineData("""{"agent":"command","command":[null]}""", "command[0]: the program to run")]
    [InlineData("""{"agent":"command","command":[""]}""", "command[0]: the program to run")]
    [InlineData("""{"agent":"command","command":["echo","\ud800"]}""", "command[1]: is not valid text")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"timeoutSeconds":-1}}""", "timeoutSeconds")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"maxTurns":0}}""", "maxTurns")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"timeoutSeconds":"soon"}}""", "limits.timeoutSeconds: has the wrong type")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"timeoutSeconds":"Infinity"}}""", "limits.timeoutSeconds: has the wrong type")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"timeoutSeconds":1e20}}""", "limits.timeoutSeconds: must be positive, at most 604800")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"timeoutSeconds":1e400}}""", "limits.timeoutSeconds")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"stallTimeoutSeconds":-0.5}}""", "limits.stallTimeoutSeconds")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","limits":{"maxTurns":100001}}""", "limits.maxTurns")]
    [InlineData("""{"agent":"claude-code","agent":"command","prompt":"hi"}""", "agent: appears twice")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","secrets":{"K":"abc"}}""", "secrets.K: a secret is at least 4")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","env":{"CORRAL_TREE_ID":"x"}}""", "env.CORRAL_TREE_ID: reserved")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","env":{"K":"v"},"secrets":{"K":"value"}}""", "also in env")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","workdir":"/no/such/dir"}""", "does not exist")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","workdir":"../escape"}""", "workspace root")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","resumeSessionId":"--dangerously-skip-permissions"}""", "resumeSessionId")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","permissions":{"allowedTools":["--evil"]}}""", "allowedTools")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","mcpServers":{"x":5}}""", "mcpServers.x")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","env":{"A=B":"c"}}""", "env.A=B")]
    [InlineData("""{"agent":"command","command":["true"],"appendSystemPrompt":"x"}""", "not supported by the command agent")]
    [InlineData("""{"agent":"command","command":["true"],"permissions":{"mode":"bogus"}}""", "not supported by the command agent")]
    [InlineData("""{"agent":"command","command":["true"],"metadata":{"k":1,"k":2}}""", "same property twice")]
    [InlineData("""{"agent":"command","command":["true"],"metadata":{"a":[{"k":1,"k":2}]}}""", "same property twice")]
    [InlineData("""{"agent":"claude-code","prompt":"hi","mcpServers":{"a":{},"a":{}}}""", "same property twice")]
    public async Task Bad_bodies_are_400_problem_details(string body, string mentions)
    {
        var r = await _http.SendAsync(HttpMethod.Post, "/v1/tasks", rawBody: body);
        Assert.Equal(HttpStatusCode.BadRequest, r.Status);
        Assert.Equal("application/problem+json", r.Message.Content.Headers.ContentType!.MediaType);
        Assert.Equal("invalid_request", r.Body!["code"]!.GetValue<string>());
        Assert.Equal(400, r.Body["status"]!.GetValue<int>());
        Assert.Contains(mentions, r.Body["detail"]!.GetValue<string>());
    }

    [Theory(Timeout = 120_000)]
    [InlineData("""{"agent":"command","commandx":["ls"]}""", "commandx")]
    [InlineData("""{"Agent":"command","command":["ls"]}""", "Agent")]
    [InlineData("""{"agent":"command","command":["ls"],"limits":{"TimeoutSeconds":5}}""", "limits.TimeoutSeconds")]
    [InlineData("""{"agent":"command","command":["ls"],"limits":{"timeout":5}}""", "limits.timeout")]
    [InlineData("""{"agent":"command","command":["ls"],"limits":{"timeoutSeconds":"soon"}}""", "limits.timeoutSeconds")]
    public async Task A_bad_field_is_named_by_its_path_once(string body, string field)
    {
        var r = await _http.SendAsync(HttpMethod.Post, "/v1/tasks", rawBody: body);
        Assert.Equal(HttpStatusCode.BadRequest, r.Status);
        Assert.Equal(field, r.Body!["errors"]![0]!["field"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Bytes_that_are_not_UTF_8_in_a_string_are_named_as_such_not_as_a_wrong_type()
    {
        using var content = new ByteArrayContent([.. "{\"agent\":\"command\",\"command\":[\"echo\",\"A"u8, 0xFF, .. "B\"]}"u8]);
        content.Headers.ContentType = new("application/json");
        var response = await _http.PostAsync("/v1/tasks", content, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!;
        Assert.Equal("command[1]", body["errors"]![0]!["field"]!.GetValue<string>());
        Assert.Contains("is not valid text", body["detail"]!.GetValue<string>());
    }

    [Theory(Timeout = 120_000)]
    [InlineData("GET", "/nothing", null, 404, "not_found", "Nothing is at /nothing.")]
    [InlineData("GET", "/ui/", null, 404, "not_found", "Nothing is at /ui/.")]
    [InlineData("PUT", "/healthz", null, 405, "method_not_allowed", "/healthz does not take PUT.")]
    [InlineData("POST", "/v1/tasks", "text/plain", 415, "unsupported_media_type", "UTF-8")]
    [InlineData("POST", "/v1/tasks", "application/json; charset=utf-16", 415, "unsupported_media_type", "UTF-8")]
    public async Task Every_problem_has_a_code_a_title_a_detail_and_a_type_also_the_frameworks_own(string method, string path, string? type, int status, string code, string detail)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (type is not null)
            request.Content = new StringContent("""{"agent":"command","command":["true"]}""", Encoding.UTF8, System.Net.Http.Headers.MediaTypeHeaderValue.Parse(type));
        var response = await _http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(status, (int)response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!;
        Assert.Equal(code, body["code"]!.GetValue<string>());
        Assert.Contains(detail, body["detail"]!.GetValue<string>());
        Assert.StartsWith("https://", body["type"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(body["title"]!.GetValue<string>()));
    }

    [Theory(Timeout = 120_000)]
    [InlineData("application/json")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json; charset=\"UTF-8\"")]
    public async Task Json_in_UTF_8_is_taken_however_its_charset_is_spelled(string type)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/tasks")
        {
            Content = new StringContent("""{"agent":"command","command":["true"]}""", Encoding.UTF8, System.Net.Http.Headers.MediaTypeHeaderValue.Parse(type)),
        };
        using var response = await _http.SendAsync(request, TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
    }

    [Theory(Timeout = 120_000)]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/v1/stats")]
    public async Task A_probe_may_use_HEAD_and_gets_the_status_without_a_body(string path)
    {
        using var head = await _http.SendAsync(new HttpRequestMessage(HttpMethod.Head, path), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Empty(await head.Content.ReadAsByteArrayAsync(TestContext.Current.CancellationToken));
    }

    [Theory(Timeout = 120_000)]
    [InlineData("chunked", "400", "bad_request")]
    [InlineData("too slow", "408", "request_timeout")]
    public async Task A_body_whose_framing_is_broken_is_the_clients_error_never_a_500(string how, string status, string code)
    {
        string head = "POST /v1/tasks HTTP/1.1\r\nHost: " + shared.Server.BaseAddress.Authority + "\r\nContent-Type: application/json\r\n";
        string request = how == "chunked"
            ? head + "Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n"
            : head + "Content-Length: 1000\r\n\r\n{\"agent\"";
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(shared.Server.BaseAddress.Host, shared.Server.BaseAddress.Port, TestContext.Current.CancellationToken);
        await socket.SendAsync(Encoding.ASCII.GetBytes(request), TestContext.Current.CancellationToken);
        // "too slow": the rest never comes; Kestrel's minimum body rate gives up after its grace period (5 s).

        var response = new StringBuilder();
        var buffer = new byte[4096];
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        deadline.CancelAfter(TimeSpan.FromSeconds(60));
        int n;
        while (!response.ToString().Contains("\"code\"") && (n = await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token)) > 0)
            response.Append(Encoding.ASCII.GetString(buffer, 0, n));
        string text = response.ToString();
        Assert.StartsWith("HTTP/1.1 " + status, text);
        Assert.Contains($"\"code\":\"{code}\"", text);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_waited_task_answers_with_the_record_its_row_and_journal_hold()
    {
        var waited = await _http.CreateAsync(new { agent = "command", command = new[] { "echo", "same" } }, wait: 30);

        Assert.Equal(HttpStatusCode.OK, waited.Status);
        Assert.Equal("application/json; charset=utf-8", waited.Message.Content.Headers.ContentType?.ToString());
        Assert.Equal($"/v1/tasks/{waited.Id}", waited.Message.Headers.Location?.OriginalString);
        Assert.Equal("same\n", waited.Body!["result"]!["text"]!.GetValue<string>());
        var stored = await _http.WaitForAsync(waited.Id!, b => b["status"]!.GetValue<string>() == "succeeded");
        Assert.True(JsonNode.DeepEquals(waited.Body, stored), $"{waited.Body}\n{stored}");
        var result = (await _http.ReadEventsAsync(waited.Id!)).Single(e => e.Name == "task.result");
        Assert.True(JsonNode.DeepEquals(waited.Body, result.Data), $"{waited.Body}\n{result.Data}");
    }

    [Fact(Timeout = 120_000)]
    public async Task Metadata_nested_past_32_levels_is_400_and_at_32_the_task_is_listed_like_any_other()
    {
        static string Nested(int levels) => string.Concat(Enumerable.Repeat("{\"a\":", levels - 1)) + "{}" + new string('}', levels - 1);
        var deep = await _http.SendAsync(HttpMethod.Post, "/v1/tasks", rawBody: $$"""{"agent":"command","command":["true"],"metadata":{{Nested(33)}}}""");
        Assert.Equal(HttpStatusCode.BadRequest, deep.Status);
        Assert.Contains("metadata: nested at most 32 levels", deep.Body!["detail"]!.GetValue<string>());

        var ok = await _http.SendAsync(HttpMethod.Post, "/v1/tasks?wait=60", rawBody: $$"""{"agent":"command","command":["true"],"metadata":{{Nested(32)}}}""");
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        var list = await _http.SendAsync(HttpMethod.Get, "/v1/tasks?limit=500");
        Assert.Equal(HttpStatusCode.OK, list.Status);
        Assert.Contains(list.Body!["items"]!.AsArray(), t => t!["id"]!.GetValue<string>() == ok.Id);
    }

    [Fact(Timeout = 120_000)]
    public async Task Bad_query_values_are_400()
    {
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Post, "/v1/tasks?wait=-1", new { agent = "claude-code", prompt = "hello" })).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Get, "/v1/tasks?status=bogus")).Status);
        // Not read as flags OR-ed into a third status.
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Get, "/v1/tasks?status=running,succeeded")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Get, "/v1/tasks?status=succeeded&status=failed")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Get, "/v1/tasks?status=1")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Get, "/v1/tasks?limit=0")).Status);
        Assert.Equal(HttpStatusCode.BadRequest, (await _http.SendAsync(HttpMethod.Get, "/v1/tasks?cursor=abc")).Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task The_same_idempotency_key_returns_the_same_task_and_a_different_body_conflicts()
    {
        string key = "idem-" + Guid.NewGuid();
        var first = await _http.CreateAsync(new { agent = "claude-code", prompt = "hello", idempotencyKey = key });
        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        var second = await _http.CreateAsync(new { agent = "claude-code", prompt = "hello", idempotencyKey = key });
        Assert.Equal(HttpStatusCode.OK, second.Status);
        Assert.Equal(first.Id, second.Id);
        var waited = await _http.CreateAsync(new { agent = "claude-code", prompt = "hello", idempotencyKey = key }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, waited.Status);
        Assert.Equal(first.Id, waited.Id);
        Assert.Equal("succeeded", waited.TaskStatus);

        var other = await _http.CreateAsync(new { agent = "claude-code", prompt = "tool", idempotencyKey = key });
        Assert.Equal(HttpStatusCode.Conflict, other.Status);
        Assert.Equal("idempotency_conflict", other.Body!["code"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task A_retry_whose_maps_are_serialized_in_another_order_is_the_same_request_not_a_conflict()
    {
        string key = "idem-" + Guid.NewGuid();
        var first = await _http.SendAsync(HttpMethod.Post, "/v1/tasks",
            rawBody: $$$"""{"agent":"claude-code","prompt":"hello","idempotencyKey":"{{{key}}}","env":{"A_ONE":"1","B_TWO":"2"},"metadata":{"team":"x","n":1}}""");
        Assert.Equal(HttpStatusCode.Accepted, first.Status);
        var retry = await _http.SendAsync(HttpMethod.Post, "/v1/tasks",
            rawBody: $$$"""{"metadata":{"n":1.0,"team":"x"},"env":{"B_TWO":"2","A_ONE":"1"},"idempotencyKey":"{{{key}}}","prompt":"hello","agent":"claude-code"}""");
        Assert.Equal(HttpStatusCode.OK, retry.Status);
        Assert.Equal(first.Id, retry.Id);

        var other = await _http.SendAsync(HttpMethod.Post, "/v1/tasks",
            rawBody: $$$"""{"agent":"claude-code","prompt":"hello","idempotencyKey":"{{{key}}}","env":{"A_ONE":"1","B_TWO":"2"},"metadata":{"team":"x","n":2}}""");
        Assert.Equal(HttpStatusCode.Conflict, other.Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_secret_equal_to_a_number_in_the_request_is_still_a_valid_request_with_a_key()
    {
        // The mask turns the number 3600 into "[secret:T]" text in what is kept: the hash must not depend on parsing that.
        string key = "idem-" + Guid.NewGuid();
        string body = $$$"""{"agent":"command","command":["true"],"secrets":{"T":"3600"},"limits":{"timeoutSeconds":3600},"idempotencyKey":"{{{key}}}"}""";
        var first = await _http.SendAsync(HttpMethod.Post, "/v1/tasks?wait=30", rawBody: body);
        Assert.Equal(HttpStatusCode.OK, first.Status);
        var retry = await _http.SendAsync(HttpMethod.Post, "/v1/tasks?wait=30", rawBody: body);
        Assert.Equal(HttpStatusCode.OK, retry.Status);
        Assert.Equal(first.Id, retry.Id);
    }

    [Fact(Timeout = 120_000)]
    public async Task List_filters_by_status_and_session_newest_first_in_pages()
    {
        var ids = new List<string>();
        for (int i = 0; i < 3; i++)
            ids.Add((await _http.ClaudeAsync("hello")).Id!);
        var failed = await _http.ClaudeAsync("apierror");

        var page1 = await _http.SendAsync(HttpMethod.Get, "/v1/tasks?status=succeeded&limit=2");
        var items = page1.Body!["items"]!.AsArray();
        Assert.Equal(2, items.Count);
        Assert.All(items, t => Assert.Equal("succeeded", t!["status"]!.GetValue<string>()));
        string cursor = page1.Body["nextCursor"]!.GetValue<string>();
        var page2 = await _http.SendAsync(HttpMethod.Get, $"/v1/tasks?status=succeeded&limit=2&cursor={cursor}");
        var all = items.Concat(page2.Body!["items"]!.AsArray()).Select(t => t!["id"]!.GetValue<string>()).ToList();
        Assert.Equal(ids[2], all[0]); // newest first
        Assert.Equal(ids[1], all[1]);
        Assert.Equal(ids[0], all[2]);
        Assert.DoesNotContain(failed.Id, all);

        string session = failed.Body!["sessionId"]!.GetValue<string>();
        var bySession = await _http.SendAsync(HttpMethod.Get, $"/v1/tasks?sessionId={session}");
        Assert.Equal([failed.Id], bySession.Body!["items"]!.AsArray().Select(t => t!["id"]!.GetValue<string>()));
        Assert.Null(bySession.Body["nextCursor"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task Events_replay_from_Last_Event_ID_or_after_and_a_reconnect_misses_nothing()
    {
        var r = await _http.ClaudeAsync("sleep:1500", wait: null);
        string id = r.Id!;

        // Live: read three events, drop the connection, come back with Last-Event-ID.
        var first = await _http.ReadEventsAsync(id, stopAfter: 3);
        Assert.Equal([1L, 2L, 3L], first.Select(e => e.Id!.Value));
        var rest = await _http.ReadEventsAsync(id, lastEventId: 3);
        Assert.Equal(4, rest[0].Id);
        Assert.Equal("task.end", rest[^1].Name);
        var all = first.Concat(rest).ToList();
        Assert.Equal(Enumerable.Range(1, all.Count).Select(i => (long?)i), all.Select(e => e.Id));
        Assert.Equal("succeeded", all.Single(e => e.Name == "task.end").Data!["status"]!.GetValue<string>());

        // Finished: replay is the same, from any point.
        var replay = await _http.ReadEventsAsync(id);
        Assert.Equal(all.Select(e => (e.Id, e.Name)), replay.Select(e => (e.Id, e.Name)));
        var after = await _http.ReadEventsAsync(id, query: "?after=5");
        Assert.Equal(all.Skip(5).Select(e => e.Id), after.Select(e => e.Id));
        var tail = await _http.ReadEventsAsync(id, lastEventId: all[^1].Id);
        Assert.Equal("task.end", Assert.Single(tail).Name); // nothing after the end: the stream still closes with task.end
    }

    [Fact(Timeout = 120_000)]
    public async Task An_idle_stream_gets_keep_alive_comments()
    {
        var r = await _http.ClaudeAsync("sleep:2500", wait: null);
        var comments = new List<string>();
        var events = await _http.ReadEventsAsync(r.Id!, comments: comments);
        Assert.Equal("task.end", events[^1].Name);
        Assert.Contains(": keep-alive", comments);
    }

    [Fact(Timeout = 120_000)]
    public async Task OpenApi_document_describes_the_task_endpoints()
    {
        var doc = JsonNode.Parse(await _http.GetStringAsync("/openapi/v1.json"))!;
        var paths = doc["paths"]!.AsObject();
        Assert.Contains("/v1/tasks", paths.Select(p => p.Key));
        Assert.Contains("/v1/tasks/{id}/events", paths.Select(p => p.Key));
        Assert.Contains("/v1/tasks/{id}/cancel", paths.Select(p => p.Key));
        Assert.NotNull(doc["components"]!["schemas"]!["TaskRecord"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task Health_and_readiness()
    {
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/healthz")).StatusCode);
        var ready = await _http.SendAsync(HttpMethod.Get, "/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.Status);
    }
}
