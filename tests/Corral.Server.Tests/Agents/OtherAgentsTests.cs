using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Agents;

/// <summary>Codex and Gemini: the same API, their own adapters (against fakes printing their JSONL shapes).</summary>
public sealed class OtherAgentsTests(SharedServer shared) : IClassFixture<SharedServer>
{
    private readonly HttpClient _http = shared.Server.Http;

    [Theory(Timeout = 120_000)]
    [InlineData("codex", "codex says: hi there", "command_execution", "thread-1")]
    [InlineData("gemini", "gemini says: hi there", "read_file", "gem-1")]
    public async Task Success_with_text_and_tool_events(string agent, string text, string tool, string session)
    {
        var r = await _http.CreateAsync(new { agent, prompt = "hi there" }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal(text, r.Body!["result"]!["text"]!.GetValue<string>());
        Assert.Equal(session, r.Body["sessionId"]!.GetValue<string>());
        Assert.NotNull(r.Body["usage"]);
        var events = await _http.ReadEventsAsync(r.Id!);
        Assert.Equal(session, events.Single(e => e.Name == "agent.init").Data!["sessionId"]!.GetValue<string>());
        Assert.Equal(tool, events.Single(e => e.Name == "agent.tool_use").Data!["name"]!.GetValue<string>());
        Assert.Single(events, e => e.Name == "agent.tool_result");
        Assert.Equal(text, string.Concat(events.Where(e => e.Name == "agent.text").Select(e => e.Data!["text"]!.GetValue<string>())));
    }

    [Theory(Timeout = 120_000)]
    [InlineData("codex", "model refused")]
    [InlineData("gemini", "quota exceeded")]
    public async Task A_reported_failure_is_an_agent_error(string agent, string message)
    {
        var r = await _http.CreateAsync(new { agent, prompt = "fail please" }, wait: 60);
        Assert.Equal((HttpStatusCode)422, r.Status);
        Assert.Equal("agent_error", r.ErrorCode);
        Assert.Contains(message, r.Body!["error"]!["message"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task Unsupported_options_are_400()
    {
        var r = await _http.CreateAsync(new { agent = "codex", prompt = "x", resumeSessionId = "abc" });
        Assert.Equal(HttpStatusCode.BadRequest, r.Status);
    }
}
