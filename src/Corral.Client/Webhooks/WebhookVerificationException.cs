namespace Corral.Client.Webhooks;

/// <summary>A webhook's signature or timestamp did not verify: do not act on it.</summary>
public sealed class WebhookVerificationException : Exception
{
    /// <summary>A refused webhook.</summary>
    /// <param name="failure">Why.</param>
    public WebhookVerificationException(WebhookVerificationFailure failure)
        : base(Describe(failure))
    {
        Failure = failure;
    }

    /// <summary>Why it was refused.</summary>
    public WebhookVerificationFailure Failure { get; }

    private static string Describe(WebhookVerificationFailure failure) => failure switch
    {
        WebhookVerificationFailure.MissingHeader => "The webhook lacks a webhook-id, webhook-timestamp or webhook-signature header.",
        WebhookVerificationFailure.InvalidTimestamp => "The webhook-timestamp header is not a Unix time in seconds.",
        WebhookVerificationFailure.TimestampTooOld => "The webhook's timestamp is too old.",
        WebhookVerificationFailure.TimestampTooNew => "The webhook's timestamp is too far in the future.",
        _ => "No signature of the webhook matches its body.",
    };
}
