using System.Text.Json;

namespace Corral.Client.Events;

/// <summary><c>agent.notice</c>: anything else worth telling: retries, rate limits, non-JSON lines, interrupts.</summary>
/// <param name="Kind">What kind of notice, e.g. <c>api_retry</c>, <c>rate_limit</c>, <c>non_json</c>.</param>
/// <param name="Message">A short text for people, when there is one.</param>
/// <param name="Payload">The agent's own payload, when there is one (<c>default</c> otherwise).</param>
public sealed record AgentNoticeEvent(string Kind, string? Message, JsonElement Payload) : CorralEvent;
