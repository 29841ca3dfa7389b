namespace Corral.Testing.FakeAnthropic;

/// <summary>Ready-made <see cref="FakeAnthropicServer.Responder"/> functions.</summary>
public static class FakeScript
{
    /// <summary>
    /// Answers by position in the conversation: the first call of a turn (no assistant message yet) gets
    /// <c>replies[0]</c>, the call after one tool round gets <c>replies[1]</c>, and so on; past the end, "not scripted".
    /// Stateless, so a retried request gets the same reply again.
    /// </summary>
    public static Func<MessagesRequest, FakeReply?> ByTurn(params FakeReply[] replies) =>
        request => request.AssistantTurnCount < replies.Length ? replies[request.AssistantTurnCount] : null;

    /// <summary>Always the same reply.</summary>
    public static Func<MessagesRequest, FakeReply?> Always(FakeReply reply) => _ => reply;

    /// <summary>Answers a tool call's result with <paramref name="afterTool"/>, anything else with <paramref name="first"/>.</summary>
    public static Func<MessagesRequest, FakeReply?> ToolThenText(FakeReply first, Func<ToolResult, FakeReply> afterTool) =>
        request => request.LatestToolResults.FirstOrDefault() is { } result ? afterTool(result) : first;
}
