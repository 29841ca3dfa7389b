using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace Corral.Server.Internal.Streaming;

/// <summary>
/// Bytes of unknown encoding as the inside of a JSON string: valid UTF-8 is kept as it is, <c>"</c>, <c>\</c> and
/// control characters are escaped, and each invalid sequence becomes U+FFFD (the exact bytes are then given in
/// base64 beside the text). Long lines are written piece by piece; <see cref="CompletePrefix"/> says where a
/// piece may end so that no character is cut in two.
/// </summary>
internal static class JsonText
{
    private static readonly SearchValues<byte> Special = SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Select(b => (byte)b), (byte)'"', (byte)'\\', .. Enumerable.Range(0x80, 0x80).Select(b => (byte)b)]);

    private static ReadOnlySpan<byte> Replacement => [0xEF, 0xBF, 0xBD];

    private static ReadOnlySpan<byte> Hex => "0123456789abcdef"u8;

    /// <summary>Writes <paramref name="bytes"/> escaped; returns whether they were valid UTF-8.</summary>
    public static bool WriteEscaped(IBufferWriter<byte> to, ReadOnlySpan<byte> bytes)
    {
        bool valid = true;
        while (!bytes.IsEmpty)
        {
            int special = bytes.IndexOfAny(Special);
            if (special < 0)
            {
                to.Write(bytes);
                break;
            }

            to.Write(bytes[..special]);
            bytes = bytes[special..];
            if (bytes[0] < 0x80)
            {
                WriteEscape(to, bytes[0]);
                bytes = bytes[1..];
                continue;
            }

            if (Rune.DecodeFromUtf8(bytes, out _, out int consumed) == OperationStatus.Done)
            {
                to.Write(bytes[..consumed]);
            }
            else
            {
                valid = false;
                to.Write(Replacement);
            }

            bytes = bytes[Math.Max(consumed, 1)..];
        }

        return valid;
    }

    /// <summary>How much of <paramref name="piece"/> to write now when more follows: all but an incomplete sequence at its end.</summary>
    public static int CompletePrefix(ReadOnlySpan<byte> piece)
    {
        for (int back = 1; back <= Math.Min(3, piece.Length); back++)
        {
            byte b = piece[^back];
            if ((b & 0xC0) == 0x80)
                continue; // a continuation byte: look further back for the lead
            int needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
            return needed > back ? piece.Length - back : piece.Length;
        }

        return piece.Length;
    }

    /// <summary>Writes base64 of <paramref name="bytes"/>; a piece that is not the last must be a multiple of 3 bytes long.</summary>
    public static void WriteBase64(IBufferWriter<byte> to, ReadOnlySpan<byte> bytes)
    {
        var span = to.GetSpan(Base64.GetMaxEncodedToUtf8Length(bytes.Length));
        Base64.EncodeToUtf8(bytes, span, out _, out int written);
        to.Advance(written);
    }

    private static void WriteEscape(IBufferWriter<byte> to, byte b)
    {
        var span = to.GetSpan(6);
        span[0] = (byte)'\\';
        int n = 2;
        switch (b)
        {
            case (byte)'"': span[1] = (byte)'"'; break;
            case (byte)'\\': span[1] = (byte)'\\'; break;
            case (byte)'\n': span[1] = (byte)'n'; break;
            case (byte)'\r': span[1] = (byte)'r'; break;
            case (byte)'\t': span[1] = (byte)'t'; break;
            default:
                span[1] = (byte)'u';
                span[2] = (byte)'0';
                span[3] = (byte)'0';
                span[4] = Hex[b >> 4];
                span[5] = Hex[b & 0xF];
                n = 6;
                break;
        }

        to.Advance(n);
    }
}
