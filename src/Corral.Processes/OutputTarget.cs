namespace Corral.Processes;

/// <summary>Where bytes read from a child's stdout or stderr go. The pipe is always read, whatever the target.</summary>
public abstract class OutputTarget
{
    private protected OutputTarget() { }

    /// <summary>
    /// Keep the bytes in memory, within <see cref="OutputLimits"/>, for <see cref="ProcessTree.ReadLinesAsync"/>,
    /// <see cref="ProcessTree.ReadChunksAsync"/> or <see cref="ProcessTree.RunAsync"/>.
    /// </summary>
    public static OutputTarget Capture { get; } = new CaptureTarget();

    /// <summary>Read and count the bytes, keep none.</summary>
    public static OutputTarget Discard { get; } = new DiscardTarget();

    /// <summary>Write the raw bytes to <paramref name="stream"/> as they arrive (flushed after each read). The stream is not disposed.</summary>
    public static OutputTarget ToStream(Stream stream) => new StreamTarget(stream ?? throw new ArgumentNullException(nameof(stream)));

    internal sealed class CaptureTarget : OutputTarget;

    internal sealed class DiscardTarget : OutputTarget;

    internal sealed class StreamTarget(Stream stream) : OutputTarget
    {
        public Stream Stream { get; } = stream;
    }
}
