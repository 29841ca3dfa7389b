using System.Text;

namespace Corral.Processes;

/// <summary>Where a child's standard input comes from.</summary>
public abstract class InputSource
{
    private protected InputSource() { }

    /// <summary>Standard input reads from <c>/dev/null</c> (immediate EOF).</summary>
    public static InputSource Null { get; } = new NullInput();

    /// <summary>A pipe written through <see cref="ProcessTree.StandardInput"/>; closing that stream sends EOF.</summary>
    public static InputSource Pipe { get; } = new PipeInput();

    /// <summary>Standard input reads from a file, opened before the child starts.</summary>
    public static InputSource FromFile(string path) => new FileInput(path ?? throw new ArgumentNullException(nameof(path)));

    /// <summary>Standard input receives these bytes, then EOF.</summary>
    public static InputSource FromBytes(ReadOnlyMemory<byte> bytes) => new BytesInput(bytes);

    /// <summary>Standard input receives this text encoded as UTF-8, then EOF.</summary>
    public static InputSource FromText(string text) => new BytesInput(Encoding.UTF8.GetBytes(text ?? throw new ArgumentNullException(nameof(text))));

    internal sealed class NullInput : InputSource;

    internal sealed class PipeInput : InputSource;

    internal sealed class FileInput(string path) : InputSource
    {
        public string Path { get; } = path;
    }

    internal sealed class BytesInput(ReadOnlyMemory<byte> bytes) : InputSource
    {
        public ReadOnlyMemory<byte> Bytes { get; } = bytes;
    }
}
