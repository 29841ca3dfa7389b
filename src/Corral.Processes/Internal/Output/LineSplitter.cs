using System.Buffers;
using System.Text;

namespace Corral.Processes.Internal.Output;

/// <summary>
/// Turns chunks of one stream into lines. A line longer than the maximum is emitted in fragments, cut on a UTF-8
/// character boundary, so no more than the maximum is ever held.
/// </summary>
internal sealed class LineSplitter(OutputStream stream, int maxLineLength)
{
    private readonly ArrayBufferWriter<byte> _pending = new();

    public void Push(ReadOnlySpan<byte> data, List<OutputLine> lines)
    {
        while (!data.IsEmpty)
        {
            int newline = data.IndexOf((byte)'\n');
            int room = maxLineLength - _pending.WrittenCount;
            if (newline >= 0 && newline <= room && _pending.WrittenCount == 0)
            {
                // The whole line is in this chunk: decode it in place, no copy through the pending buffer.
                lines.Add(new OutputLine(stream, Decode(data[..newline], trimCr: true)));
                data = data[(newline + 1)..];
                continue;
            }

            if (newline >= 0 && newline <= room)
            {
                _pending.Write(data[..newline]);
                lines.Add(new OutputLine(stream, Decode(_pending.WrittenSpan, trimCr: true)));
                _pending.Clear();
                data = data[(newline + 1)..];
                continue;
            }

            int take = Math.Min(data.Length, room);
            _pending.Write(data[..take]);
            data = data[take..];
            if (_pending.WrittenCount >= maxLineLength)
                EmitFragment(lines);
        }
    }

    public void Flush(List<OutputLine> lines)
    {
        if (_pending.WrittenCount > 0)
        {
            lines.Add(new OutputLine(stream, Decode(_pending.WrittenSpan, trimCr: true)));
            _pending.Clear();
        }
    }

    private void EmitFragment(List<OutputLine> lines)
    {
        var span = _pending.WrittenSpan;
        int cut = Utf8Boundary(span);
        lines.Add(new OutputLine(stream, Decode(span[..cut], trimCr: false), IsFragment: true));
        byte[] rest = span[cut..].ToArray();
        _pending.Clear();
        _pending.Write(rest);
    }

    // Back off over an incomplete multi-byte sequence at the end (at most 3 bytes) so each fragment decodes cleanly.
    private static int Utf8Boundary(ReadOnlySpan<byte> span)
    {
        for (int back = 1; back <= Math.Min(3, span.Length - 1); back++)
        {
            byte b = span[^back];
            if ((b & 0xC0) != 0x80)
            {
                int needed = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
                return needed > back ? span.Length - back : span.Length;
            }
        }

        return span.Length;
    }

    private static string Decode(ReadOnlySpan<byte> bytes, bool trimCr)
    {
        if (trimCr && bytes.Length > 0 && bytes[^1] == (byte)'\r')
            bytes = bytes[..^1];
        return Encoding.UTF8.GetString(bytes);
    }
}
