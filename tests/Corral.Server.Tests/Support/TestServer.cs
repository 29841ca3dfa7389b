using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Server.Hosting;
using Microsoft.AspNetCore.Builder;

namespace Corral.Server.Tests.Support;

/// <summary>A real Corral server on a random loopback port (real Kestrel, real HTTP), with its own data directory.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private readonly bool _ownsData;

    private TestServer(WebApplication app, string dataDirectory, bool ownsData, Uri baseAddress, string? token)
    {
        _app = app;
        _ownsData = ownsData;
        DataDirectory = dataDirectory;
        BaseAddress = baseAddress;
        Http = new HttpClient { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(3) };
        if (token is not null)
            Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public string DataDirectory { get; }

    public Uri BaseAddress { get; }

    public HttpClient Http { get; }

    /// <summary>Test defaults: the fake CLI, short ladders, quick keep-alives.</summary>
    public static Dictionary<string, string> Defaults() => new()
    {
        ["Corral:ClaudeCode:Executable"] = FakeAgent.ClaudePath,
        ["Corral:Codex:Executable"] = FakeAgent.CodexPath,
        ["Corral:Gemini:Executable"] = FakeAgent.GeminiPath,
        ["Corral:MaxConcurrentTasks"] = "8",
        ["Corral:MaxQueuedTasks"] = "8",
        ["Corral:InterruptGraceSeconds"] = "5",
        ["Corral:ExitGraceSeconds"] = "5",
        ["Corral:CloseInputGraceSeconds"] = "1",
        ["Corral:TerminateGraceSeconds"] = "1",
        ["Corral:KeepAliveSeconds"] = "1",
        ["Logging:LogLevel:Default"] = "Warning",
        // Tests run as root, where the default gives every task a uid of its own; most tests are about something
        // else and hand the task root-owned directories, so they opt out. The isolation tests opt back in.
        ["Corral:Isolation:User"] = "none",
    };

    public static async Task<TestServer> StartAsync(Action<Dictionary<string, string>>? configure = null, string? token = null, string? dataDirectory = null)
    {
        var settings = Defaults();
        configure?.Invoke(settings);
        string data = dataDirectory ?? Directory.CreateTempSubdirectory("corral-server-").FullName;
        var args = settings.Select(kv => $"--{kv.Key}={kv.Value}").ToArray();
        var app = CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = data, Token = token }, args);
        await app.StartAsync();
        var address = CorralServer.Addresses(app).Single();
        return new TestServer(app, data, dataDirectory is null, new Uri(address), token);
    }

    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
        if (!_ownsData)
            return;
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>An HTTP response with its body parsed.</summary>
internal sealed record ApiResponse(HttpStatusCode Status, JsonNode? Body, HttpResponseMessage Message)
{
    public string? Id => Body?["id"]?.GetValue<string>();

    public string? TaskStatus => Body?["status"]?.GetValue<string>();

    public string? ErrorCode => Body?["error"]?["code"]?.GetValue<string>() ?? Body?["code"]?.GetValue<string>();
}

/// <summary>One server-sent event.</summary>
internal sealed record SseEvent(long? Id, string Name, JsonNode? Data);

/// <summary>The API calls the tests make.</summary>
internal static class Api
{
    public static async Task<ApiResponse> SendAsync(this HttpClient http, HttpMethod method, string path, object? body = null, string? rawBody = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (rawBody is not null)
            request.Content = new StringContent(rawBody, Encoding.UTF8, "application/json");
        else if (body is not null)
            request.Content = new StringContent(body is JsonNode n ? n.ToJsonString() : JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        var response = await http.SendAsync(request);
        string text = await response.Content.ReadAsStringAsync();
        JsonNode? json = null;
        if (text.Length > 0 && response.Content.Headers.ContentType?.MediaType?.Contains("json") == true)
            json = JsonNode.Parse(text);
        return new ApiResponse(response.StatusCode, json, response);
    }

    public static Task<ApiResponse> CreateAsync(this HttpClient http, object body, double? wait = null) =>
        http.SendAsync(HttpMethod.Post, wait is { } w ? $"/v1/tasks?wait={w.ToString(System.Globalization.CultureInfo.InvariantCulture)}" : "/v1/tasks", body);

    public static Task<ApiResponse> ClaudeAsync(this HttpClient http, string prompt, double? wait = 60, object? limits = null, Dictionary<string, string>? env = null) =>
        http.CreateAsync(new Dictionary<string, object?> { ["agent"] = "claude-code", ["prompt"] = prompt, ["limits"] = limits, ["env"] = env }
            .Where(kv => kv.Value is not null).ToDictionary(), wait);

    public static Task<ApiResponse> GetTaskAsync(this HttpClient http, string id) => http.SendAsync(HttpMethod.Get, $"/v1/tasks/{id}");

    public static Task<ApiResponse> CancelAsync(this HttpClient http, string id) => http.SendAsync(HttpMethod.Post, $"/v1/tasks/{id}/cancel");

    /// <summary>Polls the record until <paramref name="condition"/> holds.</summary>
    public static async Task<JsonNode> WaitForAsync(this HttpClient http, string id, Func<JsonNode, bool> condition, TimeSpan? deadline = null, string what = "the task")
    {
        var limit = DateTime.UtcNow + (deadline ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var r = await http.GetTaskAsync(id);
            if (r.Body is { } body && condition(body))
                return body;
            if (DateTime.UtcNow > limit)
                throw new TimeoutException($"Timed out waiting for {what}; last record: {r.Body?.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    public static Task<JsonNode> WaitForEndAsync(this HttpClient http, string id, TimeSpan? deadline = null) =>
        http.WaitForAsync(id, b => b["status"]!.GetValue<string>() is not ("queued" or "running"), deadline, "the task to end");

    /// <summary>Reads the event stream until <paramref name="stopAfter"/> events or <c>task.end</c>, within a deadline.</summary>
    public static async Task<List<SseEvent>> ReadEventsAsync(this HttpClient http, string id, string? query = null, long? lastEventId = null,
        int stopAfter = int.MaxValue, TimeSpan? deadline = null, List<string>? comments = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? TimeSpan.FromSeconds(60));
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/v1/tasks/{id}/events{query}");
        if (lastEventId is { } last)
            request.Headers.Add("Last-Event-ID", last.ToString());
        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cts.Token);
        response.EnsureSuccessStatusCode();
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        var events = new List<SseEvent>();
        long? eventId = null;
        string? name = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.Length == 0)
            {
                if (name is not null)
                {
                    events.Add(new SseEvent(eventId, name, data.Length > 0 ? JsonNode.Parse(data.ToString()) : null));
                    if (name == "task.end" || events.Count >= stopAfter)
                        return events;
                }

                eventId = null;
                name = null;
                data.Clear();
            }
            else if (line.StartsWith(':'))
            {
                comments?.Add(line);
            }
            else if (line.StartsWith("id: "))
            {
                eventId = long.Parse(line[4..]);
            }
            else if (line.StartsWith("event: "))
            {
                name = line[7..];
            }
            else if (line.StartsWith("data: "))
            {
                data.Append(line[6..]);
            }
        }

        return events;
    }
}

/// <summary>A subscription to the server-wide feed (<c>GET /v1/events</c>), open once its headers arrived.</summary>
public sealed class FeedReader : IDisposable
{
    private readonly HttpResponseMessage _response;
    private readonly StreamReader _reader;

    private FeedReader(HttpResponseMessage response, StreamReader reader) => (_response, _reader) = (response, reader);

    public static async Task<FeedReader> OpenAsync(HttpClient http)
    {
        var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Get, "/v1/events"), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        return new FeedReader(response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    /// <summary>Items until one for which <paramref name="last"/> holds (included), within a deadline.</summary>
    public async Task<List<(string Name, JsonNode Data)>> ReadUntilAsync(Func<string, JsonNode, bool> last, TimeSpan? deadline = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? TimeSpan.FromSeconds(60));
        var seen = new List<(string Name, JsonNode Data)>();
        string? name = null;
        while (await _reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (line.StartsWith("event: "))
            {
                name = line[7..];
            }
            else if (line.StartsWith("data: ") && name is not null)
            {
                seen.Add((name, JsonNode.Parse(line[6..])!));
                if (last(name, seen[^1].Data))
                    return seen;
            }
        }

        throw new InvalidOperationException("the feed ended");
    }

    public void Dispose()
    {
        _reader.Dispose();
        _response.Dispose();
    }
}
