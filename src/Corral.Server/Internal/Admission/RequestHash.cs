using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Corral.Server.Internal.Admission;

/// <summary>
/// The hash an idempotency key is checked against: of the request's meaning, not its spelling. Object members are
/// taken in ordinal order of their names and numbers in one exact form (<c>1</c>, <c>1.0</c> and <c>10e-1</c> are one
/// number), so a client whose serializer orders a map differently is not told its retry is another request.
/// </summary>
internal static class RequestHash
{
    /// <summary>
    /// The SHA-256, in hex, of the canonical form of <paramref name="json"/> (a valid JSON text), with the secrets of
    /// <paramref name="mask"/> masked in it first.
    /// </summary>
    public static string Of(string json, Secrets.SecretMask? mask = null)
    {
        using var document = JsonDocument.Parse(json);
        var buffer = new ArrayBufferWriter<byte>(json.Length + 64);
        using (var writer = new Utf8JsonWriter(buffer))
            Write(document.RootElement, writer);
        return Convert.ToHexString(SHA256.HashData(mask is null ? buffer.WrittenSpan : mask.Apply(buffer.WrittenSpan)));
    }

    /// <summary>
    /// Whether a stored hash is of this request: its canonical hash, or for a row written before hashes were
    /// canonical, the hash of the request's text as it was stored then.
    /// </summary>
    public static bool Matches(string? stored, string hash, string json) =>
        stored == hash || stored == Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(json)));

    private static void Write(JsonElement element, Utf8JsonWriter writer)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                writer.WriteStartObject();
                foreach (var member in element.EnumerateObject().OrderBy(m => m.Name, StringComparer.Ordinal))
                {
                    writer.WritePropertyName(member.Name);
                    Write(member.Value, writer);
                }

                writer.WriteEndObject();
                break;
            case JsonValueKind.Array:
                writer.WriteStartArray();
                foreach (var item in element.EnumerateArray())
                    Write(item, writer);
                writer.WriteEndArray();
                break;
            case JsonValueKind.Number:
                // Written from the text, never through a double, which would round big integers together.
                writer.WriteRawValue(Number(element.GetRawText()), skipInputValidation: true);
                break;
            default:
                element.WriteTo(writer);
                break;
        }
    }

    /// <summary>
    /// A JSON number as <c>digits e exponent</c> (itself a JSON number) with no leading or trailing zero in the digits:
    /// exact at any size, the same for every spelling of one value.
    /// </summary>
    internal static string Number(string raw)
    {
        bool negative = raw.StartsWith('-');
        string text = negative ? raw[1..] : raw;
        int e = text.IndexOfAny(['e', 'E']);
        long exponent = 0;
        if (e >= 0 && !long.TryParse(text.AsSpan(e + 1), System.Globalization.CultureInfo.InvariantCulture, out exponent))
            return raw; // an exponent past 19 digits: kept as written
        string mantissa = e < 0 ? text : text[..e];
        int dot = mantissa.IndexOf('.');
        mantissa = dot >= 0 ? mantissa.Remove(dot, 1) : mantissa;
        string digits = mantissa.TrimStart('0');
        if (digits.Length == 0)
            return "0"; // and -0
        int trailing = digits.Length - digits.TrimEnd('0').Length;
        try
        {
            exponent = checked(exponent - (dot >= 0 ? mantissa.Length - dot : 0) + trailing);
        }
        catch (OverflowException)
        {
            return raw; // an exponent at the edge of 64 bits: kept as written, never wrapped onto another number
        }

        mantissa = digits;
        var canonical = new StringBuilder(mantissa.Length + 8);
        if (negative)
            canonical.Append('-');
        canonical.Append(mantissa, 0, mantissa.Length - trailing).Append('e').Append(exponent);
        return canonical.ToString();
    }
}
