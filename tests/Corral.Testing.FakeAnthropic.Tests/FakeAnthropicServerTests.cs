using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Corral.Testing.FakeAnthropic.Tests;

/// <summary>The fake on its own, over plain HTTP: wire format, recording, scripting, cancellation.</summary>
public sealed class FakeAnthropicServerTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    private static StringContent Body(bool stream, string prompt = "hi") => new(new JsonObject
    {
        ["model"] = "claude-test",
        ["max_tokens"] = 100,
        ["stream"] = stream,
        ["messages"] = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = prompt }),
    }.ToJsonString(), Encoding.UTF8, "application/json");

    /// <summary>Parses an SSE body into (event, data) pairs.</summary>
    private static List<(string Event, JsonObject Data)> ParseSse(string text)
    {
        var events = new List<(string, JsonObject)>();
        foreach (var frame in text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            string? name = null, data = null;
            foreach (var line in frame.Split('\n'))
            {
                if (line.StartsWith("event: ", StringComparison.Ordinal))
                    name = line[7..];
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                    data = line[6..];
            }

            Assert.NotNull(name);
            Assert.NotNull(data);
            var json = Assert.IsType<JsonObject>(JsonNode.Parse(data));
            Assert.Equal(name, json["type"]!.GetValue<string>());
            events.Add((name, json));
        }

        return events;
    }

    [Fact(Timeout = 120_000)]
    public async Task Streams_text_and_tool_use_as_Messages_API_events()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: Ct);
        var reply = FakeReply.ToolUse("get_weather", new { city = "Zürich", days = 3 }).WithLeadingText("Let me check. 🌦") with { InputTokens = 42 };
        api.Enqueue(reply with { Content = [new FakeBlock.Text("Let me check. 🌦", Chunks: 4), reply.Content[1]] });

        using var response = await Http.PostAsync(api.BaseUrl + "/v1/messages?beta=true", Body(stream: true), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("req_fake_1", response.Headers.GetValues("request-id").Single());
        var events = ParseSse(await response.Content.ReadAsStringAsync(Ct));

        Assert.Equal(
            ["message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta", "content_block_delta",
             "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
             "content_block_stop", "message_delta", "message_stop"],
            events.Select(e => e.Event));
        var start = events[0].Data["message"]!;
        Assert.Equal("claude-test", start["model"]!.GetValue<string>());
        Assert.Equal(42, start["usage"]!["input_tokens"]!.GetValue<int>());
        Assert.Equal("Let me check. 🌦", string.Concat(events.Where(e => e.Data["delta"]?["type"]?.GetValue<string>() == "text_delta")
            .Select(e => e.Data["delta"]!["text"]!.GetValue<string>())));
        var toolStart = events[8].Data["content_block"]!;
        Assert.Equal("tool_use", toolStart["type"]!.GetValue<string>());
        Assert.Equal(reply.ToolUseIds[0], toolStart["id"]!.GetValue<string>());
        Assert.Equal("get_weather", toolStart["name"]!.GetValue<string>());
        var json = string.Concat(events.Where(e => e.Data["delta"]?["type"]?.GetValue<string>() == "input_json_delta")
            .Select(e => e.Data["delta"]!["partial_json"]!.GetValue<string>()));
        Assert.Equal("Zürich", JsonNode.Parse(json)!["city"]!.GetValue<string>());
        Assert.Equal(1, events[8].Data["index"]!.GetValue<int>());
        Assert.Equal("tool_use", events[^2].Data["delta"]!["stop_reason"]!.GetValue<string>());

        var recorded = Assert.Single(api.Requests);
        Assert.Equal("/v1/messages", recorded.Path);
        Assert.Equal("?beta=true", recorded.Query);
        Assert.Equal("hi", recorded.Messages!.LastUserText);
        Assert.Equal(ReplyOutcome.Completed, await recorded.Finished.WaitAsync(Deadline, Ct));
        Assert.Empty(api.Faults);
    }

    [Fact(Timeout = 120_000)]
    public async Task Answers_plain_json_when_not_streaming()
    {
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.Always(FakeReply.Bash("ls").WithLeadingText("Listing.")), Ct);

        using var response = await Http.PostAsync(api.BaseUrl + "/v1/messages", Body(stream: false), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var message = JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!;

        Assert.Equal("message", message["type"]!.GetValue<string>());
        Assert.Equal("assistant", message["role"]!.GetValue<string>());
        Assert.Equal("tool_use", message["stop_reason"]!.GetValue<string>());
        Assert.Equal("Listing.", message["content"]![0]!["text"]!.GetValue<string>());
        Assert.Equal("Bash", message["content"]![1]!["name"]!.GetValue<string>());
        Assert.Equal("ls", message["content"]![1]!["input"]!["command"]!.GetValue<string>());
        Assert.False(api.Requests[0].Messages!.Stream);
    }

    [Fact(Timeout = 120_000)]
    public async Task Http_errors_have_the_status_and_the_error_body()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: Ct);
        api.Enqueue(FakeReply.Overloaded(), FakeReply.RateLimited() with { Headers = new Dictionary<string, string> { ["retry-after"] = "7" } });

        using var first = await Http.PostAsync(api.BaseUrl + "/v1/messages", Body(stream: true), Ct);
        Assert.Equal(529, (int)first.StatusCode);
        var error = JsonNode.Parse(await first.Content.ReadAsStringAsync(Ct))!;
        Assert.Equal("error", error["type"]!.GetValue<string>());
        Assert.Equal("overloaded_error", error["error"]!["type"]!.GetValue<string>());

        using var second = await Http.PostAsync(api.BaseUrl + "/v1/messages", Body(stream: true), Ct);
        Assert.Equal(HttpStatusCode.TooManyRequests, second.StatusCode);
        Assert.Equal("7", second.Headers.GetValues("retry-after").Single());
        Assert.Equal(0, api.PendingReplies);
    }

    [Fact(Timeout = 120_000)]
    public async Task Error_mid_stream_sends_an_error_event_after_message_start()
    {
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.Always(FakeReply.ErrorMidStream()), Ct);
        using var response = await Http.PostAsync(api.BaseUrl + "/v1/messages", Body(stream: true), Ct);
        var events = ParseSse(await response.Content.ReadAsStringAsync(Ct));
        Assert.Equal(["message_start", "ping", "error"], events.Select(e => e.Event));
        Assert.Equal("overloaded_error", events[2].Data["error"]!["type"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Unscripted_requests_get_400_and_are_reported_as_faults()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: Ct);
        using var response = await Http.PostAsync(api.BaseUrl + "/v1/messages", Body(stream: true), Ct);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("no reply scripted", Assert.Single(api.Faults).Message);
    }

    [Fact(Timeout = 120_000)]
    public async Task Side_endpoints_answer_and_unknown_ones_are_recorded_as_unhandled()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: Ct);

        using var count = await Http.PostAsync(api.BaseUrl + "/v1/messages/count_tokens?beta=true", Body(stream: false), Ct);
        Assert.Equal(HttpStatusCode.OK, count.StatusCode);
        Assert.True(JsonNode.Parse(await count.Content.ReadAsStringAsync(Ct))!["input_tokens"]!.GetValue<int>() > 0);

        var models = JsonNode.Parse(await Http.GetStringAsync(api.BaseUrl + "/v1/models", Ct))!;
        Assert.Equal(FakeAnthropicServer.ListedModels, models["data"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));

        using var hello = await Http.SendAsync(new HttpRequestMessage(HttpMethod.Head, api.BaseUrl + "/api/hello"), Ct);
        Assert.Equal(HttpStatusCode.OK, hello.StatusCode);

        using var unknown = await Http.PostAsync(api.BaseUrl + "/api/event_logging/batch", new StringContent("{}"), Ct);
        Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);

        Assert.Equal(["/api/event_logging/batch"], api.UnhandledRequests.Select(r => r.Path));
        Assert.Equal(4, api.Requests.Count);
        Assert.Empty(api.MessagesRequests);
        Assert.Empty(api.Faults);
    }

    [Fact(Timeout = 120_000)]
    public async Task Expected_api_key_is_enforced_when_set()
    {
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.Always(FakeReply.Text("ok")), Ct);
        api.ExpectedApiKey = "sk-right";

        using var wrong = new HttpRequestMessage(HttpMethod.Post, api.BaseUrl + "/v1/messages") { Content = Body(false) };
        wrong.Headers.Add("x-api-key", "sk-wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await Http.SendAsync(wrong, Ct)).StatusCode);

        using var right = new HttpRequestMessage(HttpMethod.Post, api.BaseUrl + "/v1/messages") { Content = Body(false) };
        right.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "sk-right");
        Assert.Equal(HttpStatusCode.OK, (await Http.SendAsync(right, Ct)).StatusCode);
    }

    [Fact(Timeout = 120_000)]
    public async Task Tool_results_and_turns_are_parsed_from_the_conversation()
    {
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.ByTurn(FakeReply.Text("first"), FakeReply.Text("second")), Ct);
        var body = new JsonObject
        {
            ["model"] = "m",
            ["stream"] = false,
            ["system"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "sys" }),
            ["messages"] = new JsonArray(
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(
                        new JsonObject { ["type"] = "text", ["text"] = "<system-reminder>\nnoise\n</system-reminder>" },
                        new JsonObject { ["type"] = "text", ["text"] = "do it" }),
                },
                new JsonObject
                {
                    ["role"] = "assistant",
                    ["content"] = new JsonArray(new JsonObject { ["type"] = "tool_use", ["id"] = "t1", ["name"] = "Bash", ["input"] = new JsonObject() }),
                },
                new JsonObject
                {
                    ["role"] = "user",
                    ["content"] = new JsonArray(new JsonObject
                    {
                        ["type"] = "tool_result", ["tool_use_id"] = "t1", ["is_error"] = true,
                        ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = "boom" }),
                    }),
                }),
        };
        using var response = await Http.PostAsync(api.BaseUrl + "/v1/messages", new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json"), Ct);
        Assert.Equal("second", JsonNode.Parse(await response.Content.ReadAsStringAsync(Ct))!["content"]![0]!["text"]!.GetValue<string>());

        var request = Assert.Single(api.MessagesRequests);
        Assert.Equal(1, request.AssistantTurnCount);
        Assert.Equal("do it", request.LastUserText);
        Assert.Equal("sys", request.SystemText);
        Assert.Equal(new ToolResult("t1", "boom", true), Assert.Single(request.LatestToolResults));
        Assert.Equal(request.LatestToolResults, request.ToolResults);
    }

    [Fact(Timeout = 120_000)]
    public async Task Hang_ends_as_client_disconnected_when_the_client_gives_up()
    {
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.Always(FakeReply.Hang()), Ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        using var response = await Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, api.BaseUrl + "/v1/messages") { Content = Body(true) },
            HttpCompletionOption.ResponseHeadersRead, cts.Token);
        var record = await api.WaitForRequestAsync(r => r.Messages is not null, Deadline, Ct);
        await record.StreamStarted.WaitAsync(Deadline, Ct);
        Assert.False(record.Finished.IsCompleted);

        await cts.CancelAsync();
        response.Dispose();

        Assert.Equal(ReplyOutcome.ClientDisconnected, await record.Finished.WaitAsync(Deadline, Ct));
    }

    [Fact(Timeout = 120_000)]
    public async Task Hang_is_ended_by_disposing_the_server_and_a_gate_can_release_it()
    {
        var api = await FakeAnthropicServer.StartAsync(cancellationToken: Ct);
        var release = new TaskCompletionSource();
        api.Enqueue(FakeReply.Hang(release.Task, text: "released text"), FakeReply.Hang());

        var released = Http.PostAsync(api.BaseUrl + "/v1/messages", Body(true), Ct);
        var first = await api.WaitForMessagesAsync(count: 1, Deadline, Ct);
        await first.Record.StreamStarted.WaitAsync(Deadline, Ct);
        release.SetResult();
        using (var response = await released)
            Assert.Contains("message_stop", await response.Content.ReadAsStringAsync(Ct));
        Assert.Equal(ReplyOutcome.Completed, await first.Record.Finished.WaitAsync(Deadline, Ct));

        var stuck = Http.SendAsync(new HttpRequestMessage(HttpMethod.Post, api.BaseUrl + "/v1/messages") { Content = Body(true) },
            HttpCompletionOption.ResponseHeadersRead, Ct);
        var second = await api.WaitForMessagesAsync(count: 2, Deadline, Ct);
        await second.Record.StreamStarted.WaitAsync(Deadline, Ct);
        (await stuck).Dispose();

        await api.DisposeAsync().AsTask().WaitAsync(Deadline, Ct);
        var outcome = await second.Record.Finished.WaitAsync(Deadline, Ct);
        Assert.True(outcome is ReplyOutcome.ServerStopped or ReplyOutcome.ClientDisconnected, outcome.ToString());
    }

    [Fact(Timeout = 120_000)]
    public async Task Slow_text_spaces_its_deltas()
    {
        await using var api = await FakeAnthropicServer.StartAsync(FakeScript.Always(FakeReply.SlowText(5, TimeSpan.FromMilliseconds(100))), Ct);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var response = await Http.PostAsync(api.BaseUrl + "/v1/messages", Body(true), Ct);
        var events = ParseSse(await response.Content.ReadAsStringAsync(Ct));
        Assert.Equal(5, events.Count(e => e.Event == "content_block_delta"));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(380), clock.Elapsed.ToString());
    }

    [Fact(Timeout = 120_000)]
    public async Task Wait_for_times_out_with_what_did_arrive()
    {
        await using var api = await FakeAnthropicServer.StartAsync(cancellationToken: Ct);
        await Http.GetAsync(api.BaseUrl + "/nothing-here", Ct);
        var e = await Assert.ThrowsAsync<TimeoutException>(() => api.WaitForMessagesAsync(count: 1, TimeSpan.FromMilliseconds(200), Ct));
        Assert.Contains("GET /nothing-here", e.Message);
    }

    [Theory]
    [InlineData("abcdef", 3, new[] { "ab", "cd", "ef" })]
    [InlineData("abc", 10, new[] { "a", "b", "c" })]
    [InlineData("a😀b", 2, new[] { "a😀", "b" })]
    [InlineData("", 3, new string[0])]
    public void Split_keeps_every_character_and_surrogate_pairs(string text, int parts, string[] expected)
    {
        Assert.Equal(expected, FakeAnthropicServer.Split(text, parts));
    }
}
