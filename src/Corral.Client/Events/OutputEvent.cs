using System.Text;

namespace Corral.Client.Events;

/// <summary><c>output</c>: a line the command agent wrote (without its line terminator).</summary>
/// <param name="Stream">Which stream.</param>
/// <param name="Text">The line as text (bytes that are not UTF-8 are replaced; <see cref="Bytes"/> has them exactly).</param>
/// <param name="IsFragment">Whether this is a piece of a line longer than the server's line limit.</param>
/// <param name="Base64">The line's exact bytes, sent only when they are not valid UTF-8.</param>
public sealed record OutputEvent(OutputStreamKind Stream, string Text, bool IsFragment, string? Base64) : CorralEvent
{
    /// <summary>The line's exact bytes.</summary>
    public byte[] Bytes => Base64 is { } b ? Convert.FromBase64String(b) : Encoding.UTF8.GetBytes(Text);
}
