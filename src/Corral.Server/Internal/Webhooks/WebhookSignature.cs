using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Corral.Server.Internal.Webhooks;

/// <summary>
/// The Standard Webhooks signature (symmetric, <c>v1</c>): <c>v1,</c> and the base64 HMAC-SHA256 of
/// <c>{webhook-id}.{webhook-timestamp}.{body}</c>, keyed with the secret's bytes (what <c>Corral.Client</c>'s
/// <c>WebhookVerifier</c> checks).
/// </summary>
internal static class WebhookSignature
{
    /// <summary>The <c>webhook-signature</c> header of a message.</summary>
    public static string Sign(byte[] key, string id, long timestamp, ReadOnlySpan<byte> body)
    {
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, key);
        hmac.AppendData(Encoding.UTF8.GetBytes(id + "." + timestamp.ToString(CultureInfo.InvariantCulture) + "."));
        hmac.AppendData(body);
        return "v1," + Convert.ToBase64String(hmac.GetHashAndReset());
    }
}
