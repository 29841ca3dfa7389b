using System.Net;
using System.Text.Json;
using Corral.Client.Internal;
using Corral.Client.Tests.Support;

namespace Corral.Client.Tests;

/// <summary>A server with a token, a small body limit, a Claude that never answers and a Codex that is missing.</summary>
public sealed class StrictServer : IAsyncLifetime
{
    public const string Token = "s3cret-token";

    private ClientServer? _server;

    public ClientServer Server => _server!;

    public async ValueTask InitializeAsync() => _server = await ClientServer.StartAsync(settings =>
    {
        settings["Corral:MaxRequestBodyBytes"] = "4096";
        settings["Corral:ClaudeCode:Executable"] = Path.Combine(AppContext.BaseDirectory, "Support", "Agents", "claude-sleeps");
        settings["Corral:Codex:Enabled"] = "true";
        settings["Corral:Codex:Executable"] = "/nonexistent/codex";
    }, Token);

    public async ValueTask DisposeAsync() => await _server!.DisposeAsync();
}

/// <summary>Every refusal of the server arrives as its typed exception, with the server's code (and field errors).</summary>
public sealed class ErrorTests(StrictServer strict) : IClassFixture<StrictServer>
{
    private readonly CorralClient _client = strict.Server.Client();

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact(Timeout = 120_000)]
    public async Task A_wrong_request_names_its_fields()
    {
        var e = await Assert.ThrowsAsync<CorralValidationException>(() => _client.CreateTaskAsync(
            Commands.Bash("true") with { Limits = new TaskLimits { TimeoutSeconds = -1, MaxTurns = 0 } }, Token));
        Assert.Equal(HttpStatusCode.BadRequest, e.StatusCode);
        Assert.Equal(CorralErrorCodes.InvalidRequest, e.Code);
        Assert.Contains(e.Errors, f => f.Field == "limits.timeoutSeconds");
        Assert.Contains(e.Errors, f => f.Field == "limits.maxTurns");
        Assert.Equal(JsonValueKind.Object, e.Problem.Body.ValueKind);

        var agent = await Assert.ThrowsAsync<CorralValidationException>(() => _client.CreateTaskAsync(new CreateTaskRequest { Agent = "nope" }, Token));
        Assert.Equal("agent", Assert.Single(agent.Errors).Field);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_missing_or_wrong_token_is_unauthorized()
    {
        using var anonymous = new CorralClient(strict.Server.Options(o => o.Token = null));
        var e = await Assert.ThrowsAsync<CorralAuthenticationException>(() => anonymous.GetTaskAsync("tsk_x", Token));
        Assert.Equal(CorralErrorCodes.Unauthorized, e.Code);
        using var wrong = new CorralClient(strict.Server.Options(o => o.Token = "wrong"));
        await Assert.ThrowsAsync<CorralAuthenticationException>(() => wrong.CreateTaskAsync(Commands.Bash("true"), Token));
        Assert.True(await anonymous.IsAliveAsync(Token)); // health needs no token
    }

    [Fact(Timeout = 120_000)]
    public async Task An_unknown_task_is_not_found_for_every_call()
    {
        const string id = "tsk_00000000000000000000000000000000";
        var calls = new Func<Task>[]
        {
            () => _client.GetTaskAsync(id, Token),
            () => _client.CancelTaskAsync(id, Token),
            () => _client.DeleteTaskAsync(id, Token),
            () => _client.OpenTranscriptAsync(id, Token),
            () => _client.OpenOutputAsync(id, OutputStreamKind.Stderr, Token),
            () => _client.WaitForTaskAsync(id, TimeSpan.FromSeconds(5), Token),
            async () => { await foreach (var _ in _client.StreamEventsAsync(id, cancellationToken: Token)) { } },
        };
        foreach (var call in calls)
            Assert.Equal(CorralErrorCodes.NotFound, (await Assert.ThrowsAsync<CorralNotFoundException>(call)).Code);
    }

    [Fact(Timeout = 120_000)]
    public async Task Conflicts_carry_their_code()
    {
        string key = "conflict-" + Guid.NewGuid().ToString("N");
        await _client.CreateTaskAsync(Commands.Bash("echo a") with { IdempotencyKey = key }, Token);
        var reused = await Assert.ThrowsAsync<CorralConflictException>(() => _client.CreateTaskAsync(Commands.Bash("echo b") with { IdempotencyKey = key }, Token));
        Assert.Equal(CorralErrorCodes.IdempotencyConflict, reused.Code);

        var running = await _client.CreateTaskAsync(Commands.Bash("sleep 60"), Token);
        var active = await Assert.ThrowsAsync<CorralConflictException>(() => _client.DeleteTaskAsync(running.Id, Token));
        Assert.Equal(CorralErrorCodes.TaskActive, active.Code);
        await _client.CancelTaskAsync(running.Id, Token);

        string session = Guid.NewGuid().ToString();
        var first = await _client.CreateTaskAsync(CreateTaskRequest.ForPrompt(CorralAgents.ClaudeCode, "hi") with { ResumeSessionId = session }, Token);
        var busy = await Assert.ThrowsAsync<CorralConflictException>(() =>
            _client.CreateTaskAsync(CreateTaskRequest.ForPrompt(CorralAgents.ClaudeCode, "again") with { ResumeSessionId = session }, Token));
        Assert.Equal(CorralErrorCodes.SessionBusy, busy.Code);
        await _client.CancelTaskAsync(first.Id, Token);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_body_over_the_limit_is_too_large()
    {
        var e = await Assert.ThrowsAsync<CorralPayloadTooLargeException>(() =>
            _client.CreateTaskAsync(Commands.Bash("true") with { Prompt = new string('x', 10_000) }, Token));
        Assert.Equal(CorralErrorCodes.PayloadTooLarge, e.Code);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_missing_agent_is_unavailable_at_once_without_retries()
    {
        using var logged = new LoggedClient(strict.Server);
        var e = await Assert.ThrowsAsync<CorralServiceUnavailableException>(() =>
            logged.Client.CreateTaskAsync(CreateTaskRequest.ForPrompt(CorralAgents.Codex, "hi"), Token));
        Assert.Equal(CorralErrorCodes.AgentNotAvailable, e.Code);
        Assert.Null(e.RetryAfter); // the server sends none: a missing CLI does not appear by waiting, and the client does not wait for one
        Assert.Single(logged.Log.Attempts);
    }

    [Theory]
    [InlineData(400, "invalid_request", typeof(CorralValidationException))]
    [InlineData(415, "unsupported_media_type", typeof(CorralValidationException))]
    [InlineData(401, "unauthorized", typeof(CorralAuthenticationException))]
    [InlineData(404, "not_found", typeof(CorralNotFoundException))]
    [InlineData(409, "session_busy", typeof(CorralConflictException))]
    [InlineData(409, "idempotency_conflict", typeof(CorralConflictException))]
    [InlineData(409, "task_active", typeof(CorralConflictException))]
    [InlineData(413, "payload_too_large", typeof(CorralPayloadTooLargeException))]
    [InlineData(429, "busy", typeof(CorralRateLimitedException))]
    [InlineData(503, "agent_not_available", typeof(CorralServiceUnavailableException))]
    [InlineData(503, "draining", typeof(CorralServiceUnavailableException))]
    [InlineData(503, "storage_unavailable", typeof(CorralServiceUnavailableException))]
    [InlineData(507, "storage_full", typeof(CorralStorageFullException))]
    [InlineData(500, "internal_error", typeof(CorralApiException))]
    public void Every_status_has_its_exception(int status, string code, Type type)
    {
        var body = JsonSerializer.Deserialize<JsonElement>(
            $$"""{"type":"x","title":"T","status":{{status}},"detail":"D","code":"{{code}}","errors":[{"field":"f","message":"m"}],"traceId":"t","futureField":1}""");
        var e = Problems.Exception(Problems.From((HttpStatusCode)status, body, TimeSpan.FromSeconds(2)));
        Assert.IsType(type, e);
        Assert.Equal(code, e.Code);
        Assert.Equal("D", e.Problem.Detail);
        Assert.Equal(new CorralFieldError("f", "m"), Assert.Single(e.Errors));
        Assert.Equal(TimeSpan.FromSeconds(2), e.RetryAfter);
        Assert.Contains(code, e.Message);
    }

    [Fact]
    public void A_body_that_is_not_a_problem_still_gives_the_status()
    {
        var e = Problems.Exception(Problems.From(HttpStatusCode.BadGateway, default, null));
        Assert.Null(e.Code);
        Assert.Equal(HttpStatusCode.BadGateway, e.StatusCode);
        Assert.Empty(e.Errors);
    }
}
