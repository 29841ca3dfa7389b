using System.Net;
using System.Net.Http.Headers;
using Corral.Server.Hosting;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Api;

/// <summary>Bearer-token auth, the refusal to listen publicly without one, and honest readiness.</summary>
public sealed class AuthAndReadinessTests
{
    [Fact(Timeout = 120_000)]
    public async Task With_a_token_every_task_request_needs_it_and_health_does_not()
    {
        await using var server = await TestServer.StartAsync(token: "s3cret-token");
        using var anonymous = new HttpClient { BaseAddress = server.BaseAddress };

        var none = await anonymous.SendAsync(HttpMethod.Get, "/v1/tasks");
        Assert.Equal(HttpStatusCode.Unauthorized, none.Status);
        Assert.Equal("Bearer", none.Message.Headers.WwwAuthenticate.Single().Scheme);
        Assert.Equal("unauthorized", none.Body!["code"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(HttpMethod.Post, "/v1/tasks", new { agent = "claude-code", prompt = "hello" })).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/openapi/v1.json")).StatusCode);

        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "wrong");
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.SendAsync(HttpMethod.Get, "/v1/tasks")).Status);

        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/readyz")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks")).Status);
        Assert.Equal(HttpStatusCode.OK, (await server.Http.ClaudeAsync("hello")).Status);
    }

    [Theory(Timeout = 120_000)]
    [InlineData("http://0.0.0.0:0")]
    [InlineData("http://*:8080")]
    [InlineData("http://+:8080")]
    [InlineData("http://127.0.0.1:0;http://[::]:0")]
    public async Task A_non_loopback_address_without_a_token_is_refused(string urls)
    {
        Assert.Equal(urls.Split(';')[^1], CorralServer.NonLoopback(urls));
        Assert.Throws<ServerConfigurationException>(() => CorralServer.Build(new ServerOptions { Urls = urls, DataDirectory = Path.GetTempPath() }, []));
        Assert.Equal(2, await CorralServer.RunAsync(new ServerOptions { Urls = urls, DataDirectory = Path.GetTempPath() }, [], TestContext.Current.CancellationToken));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080")]
    [InlineData("http://localhost:8080")]
    [InlineData("http://[::1]:8080;http://127.0.0.2:9")]
    public void Loopback_addresses_need_no_token(string urls) => Assert.Null(CorralServer.NonLoopback(urls));

    [Fact(Timeout = 120_000)]
    public async Task A_missing_cli_makes_its_agent_503_and_readyz_lists_it_while_other_agents_work()
    {
        await using var server = await TestServer.StartAsync(s => s["Corral:ClaudeCode:Executable"] = "/nonexistent/claude");
        var ready = await server.Http.SendAsync(HttpMethod.Get, "/readyz");
        Assert.Equal(HttpStatusCode.OK, ready.Status);
        var claudeEntry = ready.Body!["agents"]!.AsArray().Single(a => a!["agent"]!.GetValue<string>() == "claude-code")!;
        Assert.False(claudeEntry["available"]!.GetValue<bool>());
        Assert.Contains("/nonexistent/claude", claudeEntry["reason"]!.GetValue<string>());
        Assert.True(ready.Body["agents"]!.AsArray().Single(a => a!["agent"]!.GetValue<string>() == "command")!["available"]!.GetValue<bool>());

        var claude = await server.Http.ClaudeAsync("hello", wait: 5);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, claude.Status);
        Assert.Equal("agent_not_available", claude.Body!["code"]!.GetValue<string>());
        Assert.Null(claude.Message.Headers.RetryAfter); // an operator must install the CLI: waiting does not help
        var command = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, command.Status);
    }

    [Fact(Timeout = 120_000)]
    public async Task Readyz_is_503_when_no_agent_can_take_a_task()
    {
        await using var server = await TestServer.StartAsync(s =>
        {
            foreach (string agent in new[] { "ClaudeCode", "Codex", "Gemini" })
                s[$"Corral:{agent}:Executable"] = "/nonexistent/" + agent;
            s["Corral:Command:Enabled"] = "false";
        });
        var ready = await server.Http.SendAsync(HttpMethod.Get, "/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.Status);
        Assert.Equal("not_ready", ready.Body!["code"]!.GetValue<string>());
        Assert.Contains("/nonexistent/ClaudeCode", ready.Body["detail"]!.GetValue<string>());
        Assert.NotNull(ready.Message.Headers.RetryAfter);
        var command = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 5);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, command.Status);
        Assert.Contains("disabled", command.Body!["detail"]!.GetValue<string>());
    }
}
