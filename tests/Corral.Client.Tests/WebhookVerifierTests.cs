using System.Text;
using Corral.Client.Webhooks;

namespace Corral.Client.Tests;

/// <summary>The Standard Webhooks verifier, against the specification's own test vector and its failure cases.</summary>
public sealed class WebhookVerifierTests
{
    // The vector of the Standard Webhooks reference libraries ("sign function works").
    private const string Secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    private const string MessageId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    private const long Timestamp = 1614265330;
    private const string Signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("{\"test\": 2432232314}");

    private static WebhookVerifier At(long unixSeconds, string secret = Secret) =>
        new(secret, timeProvider: new FixedClock(DateTimeOffset.FromUnixTimeSeconds(unixSeconds)));

    [Fact]
    public void It_signs_the_specifications_vector()
    {
        Assert.Equal(Signature, At(Timestamp).Sign(MessageId, DateTimeOffset.FromUnixTimeSeconds(Timestamp), Body));
    }

    [Fact]
    public void It_accepts_the_specifications_vector_with_or_without_the_secret_prefix()
    {
        At(Timestamp).Verify(Body, MessageId, Timestamp.ToString(), Signature);
        At(Timestamp, Secret["whsec_".Length..]).Verify(Body, MessageId, Timestamp.ToString(), Signature);
        var headers = new Dictionary<string, string>
        {
            ["webhook-id"] = MessageId, ["webhook-timestamp"] = Timestamp.ToString(), ["webhook-signature"] = Signature,
        };
        At(Timestamp + 299).Verify(Body, name => headers.GetValueOrDefault(name)); // within the 5-minute tolerance
    }

    [Fact]
    public void One_matching_signature_among_several_is_enough()
    {
        string several = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
            + Signature + " v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
        Assert.True(At(Timestamp).TryVerify(Body, MessageId, Timestamp.ToString(), several, out var failure));
        Assert.Equal(WebhookVerificationFailure.None, failure);
    }

    [Theory]
    [InlineData("v1,dawfeoifkpqwoekfpqoekf")]        // not the signature
    [InlineData("v1,g0hM9SsE")]                      // a partial signature
    [InlineData("v1,")]
    [InlineData("v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")] // the right bytes under another version
    [InlineData("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")]    // no version
    public void A_bad_signature_is_rejected(string signature)
    {
        var e = Assert.Throws<WebhookVerificationException>(() => At(Timestamp).Verify(Body, MessageId, Timestamp.ToString(), signature));
        Assert.Equal(WebhookVerificationFailure.NoMatchingSignature, e.Failure);
    }

    [Fact]
    public void A_changed_body_id_or_timestamp_is_rejected()
    {
        var verifier = At(Timestamp);
        Assert.False(verifier.TryVerify(Encoding.UTF8.GetBytes("{\"test\":2432232314}"), MessageId, Timestamp.ToString(), Signature, out var body));
        Assert.Equal(WebhookVerificationFailure.NoMatchingSignature, body);
        Assert.False(verifier.TryVerify(Body, MessageId + "x", Timestamp.ToString(), Signature, out _));
        Assert.False(verifier.TryVerify(Body, MessageId, (Timestamp + 1).ToString(), Signature, out _));
        Assert.False(At(Timestamp, "whsec_" + Convert.ToBase64String(new byte[24])).TryVerify(Body, MessageId, Timestamp.ToString(), Signature, out _));
    }

    [Theory]
    [InlineData(null, "1614265330", Signature, WebhookVerificationFailure.MissingHeader)]
    [InlineData(MessageId, null, Signature, WebhookVerificationFailure.MissingHeader)]
    [InlineData(MessageId, "1614265330", null, WebhookVerificationFailure.MissingHeader)]
    [InlineData(MessageId, "hello", Signature, WebhookVerificationFailure.InvalidTimestamp)]
    [InlineData(MessageId, "-5", Signature, WebhookVerificationFailure.InvalidTimestamp)]
    public void Missing_headers_and_bad_timestamps_are_rejected(string? id, string? timestamp, string? signature, WebhookVerificationFailure expected)
    {
        var e = Assert.Throws<WebhookVerificationException>(() => At(Timestamp).Verify(Body, id, timestamp, signature));
        Assert.Equal(expected, e.Failure);
    }

    [Fact]
    public void A_timestamp_outside_the_tolerance_is_rejected()
    {
        Assert.False(At(Timestamp + 301).TryVerify(Body, MessageId, Timestamp.ToString(), Signature, out var old));
        Assert.Equal(WebhookVerificationFailure.TimestampTooOld, old);
        Assert.False(At(Timestamp - 301).TryVerify(Body, MessageId, Timestamp.ToString(), Signature, out var future));
        Assert.Equal(WebhookVerificationFailure.TimestampTooNew, future);
        var strict = new WebhookVerifier(Secret, TimeSpan.FromSeconds(10), new FixedClock(DateTimeOffset.FromUnixTimeSeconds(Timestamp + 11)));
        Assert.False(strict.TryVerify(Body, MessageId, Timestamp.ToString(), Signature, out _));
    }

    [Fact]
    public void A_secret_that_is_not_base64_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new WebhookVerifier("whsec_not base64!"));
        Assert.Throws<ArgumentException>(() => new WebhookVerifier(""));
        Assert.Throws<ArgumentException>(() => new WebhookVerifier("whsec_"));
    }

    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }
}
