namespace Corral.Client;

/// <summary>
/// A task's webhook: the server POSTs the final record there (and the start, if asked), signed; verify deliveries with
/// <see cref="Webhooks.WebhookVerifier"/>. The URL must start with one of the server's <c>Corral:Webhooks:AllowedUrlPrefixes</c>.
/// </summary>
public sealed record TaskWebhook
{
    /// <summary>The event of a task's start (a <c>task.status</c> delivery).</summary>
    public const string StatusEvent = "status";

    /// <summary>The event of a task's end (a <c>task.ended</c> delivery with the final record).</summary>
    public const string EndEvent = "end";

    /// <summary>An absolute http or https URL.</summary>
    public string? Url { get; init; }

    /// <summary><c>["end"]</c> (the server's default when <c>null</c>) or <c>["status", "end"]</c>.</summary>
    public IReadOnlyList<string>? Events { get; init; }
}
