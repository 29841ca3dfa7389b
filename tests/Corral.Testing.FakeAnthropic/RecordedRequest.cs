using System.Text.Json;
using System.Text.Json.Nodes;

namespace Corral.Testing.FakeAnthropic;

/// <summary>How the fake's answer to a request ended.</summary>
public enum ReplyOutcome
{
    /// <summary>The whole reply was written.</summary>
    Completed,

    /// <summary>The client closed the connection before the reply was complete (e.g. the CLI was interrupted).</summary>
    ClientDisconnected,

    /// <summary>The server was disposed while the reply was still being written (e.g. a <see cref="FakeReply.Hang"/>).</summary>
    ServerStopped,

    /// <summary>Writing the reply failed for another reason (see the server's <see cref="FakeAnthropicServer.Faults"/>).</summary>
    Faulted,
}

/// <summary>One HTTP request the fake received, exactly as it arrived, plus what became of the answer.</summary>
public sealed class RecordedRequest
{
    private readonly TaskCompletionSource _streamStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource<ReplyOutcome> _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lazy<JsonNode?> _json;

    internal RecordedRequest(int sequence, string method, string path, string query,
        IReadOnlyDictionary<string, string> headers, string body, DateTimeOffset receivedAt)
    {
        Sequence = sequence;
        Method = method;
        Path = path;
        Query = query;
        Headers = headers;
        Body = body;
        ReceivedAt = receivedAt;
        _json = new Lazy<JsonNode?>(() =>
        {
            if (string.IsNullOrWhiteSpace(Body))
                return null;
            try
            {
                return JsonNode.Parse(Body);
            }
            catch (JsonException)
            {
                return null;
            }
        });
    }

    /// <summary>1-based arrival order across all endpoints.</summary>
    public int Sequence { get; }

    /// <summary>The HTTP method.</summary>
    public string Method { get; }

    /// <summary>The path, without the query (e.g. <c>/v1/messages</c>).</summary>
    public string Path { get; }

    /// <summary>The query string including <c>?</c>, or empty (Claude Code sends <c>?beta=true</c>).</summary>
    public string Query { get; }

    /// <summary>Request headers, case-insensitive; repeated headers are joined with <c>", "</c>.</summary>
    public IReadOnlyDictionary<string, string> Headers { get; }

    /// <summary>The raw body, decoded as UTF-8.</summary>
    public string Body { get; }

    /// <summary>The body parsed as JSON, or <c>null</c> when it is empty or not JSON.</summary>
    public JsonNode? Json => _json.Value;

    /// <summary>When the body had been read.</summary>
    public DateTimeOffset ReceivedAt { get; }

    /// <summary>Whether a route of the fake handled it (<c>false</c>: answered 404).</summary>
    public bool Handled { get; internal set; }

    /// <summary>The reply that was chosen, for <c>POST /v1/messages</c>.</summary>
    public FakeReply? Reply { get; internal set; }

    /// <summary>For <c>POST /v1/messages</c>: the parsed view of the body (<c>null</c> for other endpoints).</summary>
    public MessagesRequest? Messages { get; internal set; }

    /// <summary>Completes once the response headers and the first SSE events (<c>message_start</c>) were flushed.</summary>
    public Task StreamStarted => _streamStarted.Task;

    /// <summary>Completes with how the answer ended.</summary>
    public Task<ReplyOutcome> Finished => _finished.Task;

    /// <summary>A header's value, or <c>null</c>.</summary>
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;

    internal void MarkStreamStarted() => _streamStarted.TrySetResult();

    internal void MarkFinished(ReplyOutcome outcome)
    {
        _streamStarted.TrySetResult();
        _finished.TrySetResult(outcome);
    }

    /// <inheritdoc />
    public override string ToString() => $"#{Sequence} {Method} {Path}{Query}";
}
