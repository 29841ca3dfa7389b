namespace Corral.Client.Webhooks;

/// <summary>Why a webhook was not accepted.</summary>
public enum WebhookVerificationFailure
{
    /// <summary>It was accepted.</summary>
    None = 0,

    /// <summary>A <c>webhook-id</c>, <c>webhook-timestamp</c> or <c>webhook-signature</c> header is missing or empty.</summary>
    MissingHeader,

    /// <summary><c>webhook-timestamp</c> is not a whole number of seconds since the Unix epoch.</summary>
    InvalidTimestamp,

    /// <summary>The timestamp is older than the tolerance allows (a replay, or a clock far behind).</summary>
    TimestampTooOld,

    /// <summary>The timestamp is further in the future than the tolerance allows.</summary>
    TimestampTooNew,

    /// <summary>No <c>v1</c> signature in <c>webhook-signature</c> matches the body with this secret.</summary>
    NoMatchingSignature,
}
