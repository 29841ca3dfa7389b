using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Corral.Client.Webhooks;

/// <summary>
/// Verifies webhooks signed per the Standard Webhooks specification (symmetric, <c>v1</c>): the
/// <c>webhook-signature</c> header holds space-separated signatures <c>v1,</c> + base64 HMAC-SHA256 of
/// <c>{webhook-id}.{webhook-timestamp}.{body}</c>, keyed with the secret's bytes; one matching signature is enough
/// (a sender rotating its secret signs with both). The timestamp must be within <see cref="Tolerance"/> of now,
/// against replays. Verify the body's exact bytes, before parsing it. Thread-safe.
/// </summary>
public sealed class WebhookVerifier
{
    /// <summary>The header with the message id (the same on every retry of a delivery: use it to drop duplicates).</summary>
    public const string IdHeader = "webhook-id";

    /// <summary>The header with the time of the attempt, in seconds since the Unix epoch.</summary>
    public const string TimestampHeader = "webhook-timestamp";

    /// <summary>The header with the signatures.</summary>
    public const string SignatureHeader = "webhook-signature";

    /// <summary>The prefix of a serialized secret (<c>whsec_</c> + base64 of the key).</summary>
    public const string SecretPrefix = "whsec_";

    /// <summary>The specification's suggested tolerance: 5 minutes either way.</summary>
    public static readonly TimeSpan DefaultTolerance = TimeSpan.FromMinutes(5);

    private readonly byte[] _key;

    private readonly TimeProvider _time;

    /// <summary>A verifier for one secret.</summary>
    /// <param name="secret">The secret: <c>whsec_</c> followed by base64 of the key (the prefix may be left out).</param>
    /// <param name="tolerance">How far the timestamp may be from now; default <see cref="DefaultTolerance"/>.</param>
    /// <param name="timeProvider">The clock (tests); default the system's.</param>
    /// <exception cref="ArgumentException">The secret is empty or not base64.</exception>
    public WebhookVerifier(string secret, TimeSpan? tolerance = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        string encoded = secret.StartsWith(SecretPrefix, StringComparison.Ordinal) ? secret[SecretPrefix.Length..] : secret;
        try
        {
            _key = Convert.FromBase64String(encoded);
        }
        catch (FormatException)
        {
            throw new ArgumentException("The webhook secret is not whsec_ followed by base64.", nameof(secret));
        }

        if (_key.Length == 0)
            throw new ArgumentException("The webhook secret is empty.", nameof(secret));
        Tolerance = tolerance ?? DefaultTolerance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>How far the timestamp may be from now, either way.</summary>
    public TimeSpan Tolerance { get; }

    /// <summary>Verifies a webhook from its body and its three headers.</summary>
    /// <param name="body">The request body's exact bytes.</param>
    /// <param name="id">The <c>webhook-id</c> header.</param>
    /// <param name="timestamp">The <c>webhook-timestamp</c> header.</param>
    /// <param name="signature">The <c>webhook-signature</c> header.</param>
    /// <exception cref="WebhookVerificationException">It does not verify (<see cref="WebhookVerificationException.Failure"/> says why).</exception>
    public void Verify(ReadOnlySpan<byte> body, string? id, string? timestamp, string? signature)
    {
        if (!TryVerify(body, id, timestamp, signature, out var failure))
            throw new WebhookVerificationException(failure);
    }

    /// <summary>Verifies a webhook from its body and a way to read its headers, e.g. <c>name =&gt; request.Headers[name]</c>.</summary>
    /// <param name="body">The request body's exact bytes.</param>
    /// <param name="header">A header's value by name (<c>null</c> when absent).</param>
    /// <exception cref="WebhookVerificationException">It does not verify.</exception>
    public void Verify(ReadOnlySpan<byte> body, Func<string, string?> header)
    {
        ArgumentNullException.ThrowIfNull(header);
        Verify(body, header(IdHeader), header(TimestampHeader), header(SignatureHeader));
    }

    /// <summary>Whether a webhook verifies, and if not, why.</summary>
    /// <param name="body">The request body's exact bytes.</param>
    /// <param name="id">The <c>webhook-id</c> header.</param>
    /// <param name="timestamp">The <c>webhook-timestamp</c> header.</param>
    /// <param name="signature">The <c>webhook-signature</c> header.</param>
    /// <param name="failure">Why not; <see cref="WebhookVerificationFailure.None"/> when it verifies.</param>
    /// <returns><c>true</c> when the timestamp is within the tolerance and a signature matches.</returns>
    public bool TryVerify(ReadOnlySpan<byte> body, string? id, string? timestamp, string? signature, out WebhookVerificationFailure failure)
    {
        failure = Check(body, id, timestamp, signature);
        return failure == WebhookVerificationFailure.None;
    }

    /// <summary>The <c>webhook-signature</c> value a sender with this secret puts on a message (for senders and tests).</summary>
    /// <param name="id">The message id.</param>
    /// <param name="timestamp">The time of the attempt (whole seconds are signed).</param>
    /// <param name="body">The body's exact bytes.</param>
    /// <returns><c>v1,</c> + the base64 signature.</returns>
    public string Sign(string id, DateTimeOffset timestamp, ReadOnlySpan<byte> body)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        return "v1," + Convert.ToBase64String(Mac(id, timestamp.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture), body));
    }

    private WebhookVerificationFailure Check(ReadOnlySpan<byte> body, string? id, string? timestamp, string? signature)
    {
        if (string.IsNullOrEmpty(id) || string.IsNullOrEmpty(timestamp) || string.IsNullOrWhiteSpace(signature))
            return WebhookVerificationFailure.MissingHeader;
        if (!long.TryParse(timestamp, NumberStyles.None, CultureInfo.InvariantCulture, out long seconds)
            || seconds > DateTimeOffset.MaxValue.ToUnixTimeSeconds())
            return WebhookVerificationFailure.InvalidTimestamp;
        long now = _time.GetUtcNow().ToUnixTimeSeconds();
        long tolerance = (long)Tolerance.TotalSeconds;
        if (seconds < now - tolerance)
            return WebhookVerificationFailure.TimestampTooOld;
        if (seconds > now + tolerance)
            return WebhookVerificationFailure.TimestampTooNew;

        byte[] expected = Mac(id, timestamp, body);
        Span<byte> candidate = stackalloc byte[64];
        foreach (string entry in signature.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            // "v1,<base64>"; other versions (v1a: asymmetric, future ones) are not ours to check.
            if (!entry.StartsWith("v1,", StringComparison.Ordinal))
                continue;
            if (Convert.TryFromBase64String(entry[3..], candidate, out int length)
                && CryptographicOperations.FixedTimeEquals(candidate[..length], expected))
                return WebhookVerificationFailure.None;
        }

        return WebhookVerificationFailure.NoMatchingSignature;
    }

    /// <summary>HMAC-SHA256 of <c>{id}.{timestamp}.{body}</c>.</summary>
    private byte[] Mac(string id, string timestamp, ReadOnlySpan<byte> body)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _key);
        hmac.AppendData(Encoding.UTF8.GetBytes(id + "." + timestamp + "."));
        hmac.AppendData(body);
        return hmac.GetHashAndReset();
    }
}
