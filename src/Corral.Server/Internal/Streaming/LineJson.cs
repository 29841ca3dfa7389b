using System.Buffers;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Streaming;

/// <summary>
/// A stored line as JSON, read from its stream file in small pieces: <c>"text"</c> (without its line terminator),
/// <c>"fragment": true</c> for a piece of a line longer than the limit, and <c>"base64"</c> with the exact bytes when
/// they are not valid UTF-8. Also the line's bytes verbatim, for JSON lines of the transcript.
/// </summary>
internal static class LineJson
{
    /// <summary>Writes <c>"text":"…"</c> (plus <c>,"fragment":true</c> and <c>,"base64":"…"</c> where they apply), without braces.</summary>
    public static void WriteFields(IBufferWriter<byte> to, JournalReader reader, in JournalEntry line, byte[] buffer)
    {
        long length = TextLength(reader, line, buffer);
        int piece = buffer.Length - buffer.Length % 3; // a multiple of 3: each base64 piece but the last encodes without padding
        to.Write("\"text\":\""u8);
        bool valid = true;
        for (long at = 0; at < length;)
        {
            int n = reader.ReadData(line, at, buffer.AsSpan(0, (int)Math.Min(piece, length - at)));
            if (n == 0)
                break;
            int take = at + n < length ? JsonText.CompletePrefix(buffer.AsSpan(0, n)) : n;
            if (take == 0)
                take = n;
            valid &= JsonText.WriteEscaped(to, buffer.AsSpan(0, take));
            at += take;
        }

        to.Write("\""u8);
        if ((line.Flags & LineFlags.Fragment) != 0)
            to.Write(",\"fragment\":true"u8);
        if (valid)
            return;
        to.Write(",\"base64\":\""u8);
        for (long at = 0; at < length;)
        {
            int n = reader.ReadData(line, at, buffer.AsSpan(0, (int)Math.Min(piece, length - at)));
            if (n == 0)
                break;
            JsonText.WriteBase64(to, buffer.AsSpan(0, n));
            at += n;
        }

        to.Write("\""u8);
    }

    /// <summary>Writes the line's text bytes as they are (a JSON line of the agent's protocol).</summary>
    public static void WriteVerbatim(IBufferWriter<byte> to, JournalReader reader, in JournalEntry line, byte[] buffer)
    {
        long length = TextLength(reader, line, buffer);
        for (long at = 0; at < length;)
        {
            int n = reader.ReadData(line, at, buffer.AsSpan(0, (int)Math.Min(buffer.Length, length - at)));
            if (n == 0)
                break;
            to.Write(buffer.AsSpan(0, n));
            at += n;
        }
    }

    /// <summary>The line's text: without its <c>\n</c>, and without a <c>\r</c> before that.</summary>
    private static long TextLength(JournalReader reader, in JournalEntry line, byte[] buffer)
    {
        long length = line.ContentLength;
        if ((line.Flags & (LineFlags.Fragment | LineFlags.Unterminated)) == 0 && length > 0
            && reader.ReadData(line, length - 1, buffer.AsSpan(0, 1)) == 1 && buffer[0] == '\r')
            length--;
        return length;
    }
}
