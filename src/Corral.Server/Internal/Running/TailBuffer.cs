namespace Corral.Server.Internal.Running;

/// <summary>The last <c>capacity</c> bytes of a stream, whatever its length.</summary>
internal sealed class TailBuffer(int capacity)
{
    private readonly byte[] _ring = new byte[capacity];
    private long _written;
    private byte[]? _contents;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length >= capacity)
            bytes = bytes[^capacity..];
        int at = (int)(_written % capacity);
        int first = Math.Min(bytes.Length, capacity - at);
        bytes[..first].CopyTo(_ring.AsSpan(at));
        bytes[first..].CopyTo(_ring);
        _written += bytes.Length;
        _contents = null;
    }

    /// <summary>The bytes in order, oldest first.</summary>
    public ReadOnlySpan<byte> Contents
    {
        get
        {
            if (_contents is not null)
                return _contents;
            if (_written <= capacity)
                return _contents = _ring.AsSpan(0, (int)_written).ToArray();
            int at = (int)(_written % capacity);
            return _contents = [.. _ring.AsSpan(at), .. _ring.AsSpan(0, at)];
        }
    }
}
