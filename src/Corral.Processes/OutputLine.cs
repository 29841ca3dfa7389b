namespace Corral.Processes;

/// <summary>Which of the child's output streams a piece of output came from.</summary>
public enum OutputStream
{
    /// <summary>Standard output.</summary>
    StandardOutput = 1,

    /// <summary>Standard error.</summary>
    StandardError = 2,
}

/// <summary>One line of output (without its line terminator), decoded as UTF-8.</summary>
/// <param name="Stream">The stream it was read from.</param>
/// <param name="Text">The text, without the trailing <c>\n</c> (or <c>\r\n</c>).</param>
/// <param name="IsFragment">
/// <c>true</c> when the line was longer than <see cref="OutputLimits.MaxLineLength"/> and this is one piece of it
/// that does not end the line; the piece that ends it has <c>false</c>.
/// </param>
public readonly record struct OutputLine(OutputStream Stream, string Text, bool IsFragment = false);

/// <summary>A chunk of raw bytes as read from one stream; non-UTF-8 bytes are intact.</summary>
/// <param name="Stream">The stream it was read from.</param>
/// <param name="Bytes">The bytes.</param>
public readonly record struct OutputChunk(OutputStream Stream, ReadOnlyMemory<byte> Bytes);
