namespace Corral.Processes.Internal.Output;

/// <summary>Receives the bytes one pump reads. Data must be copied before returning: the pump reuses its buffer.</summary>
internal interface IOutputSink
{
    ValueTask WriteAsync(OutputStream stream, ReadOnlyMemory<byte> data);

    void Complete(OutputStream stream);
}

internal sealed class DiscardSink : IOutputSink
{
    public static readonly DiscardSink Instance = new();

    public ValueTask WriteAsync(OutputStream stream, ReadOnlyMemory<byte> data) => ValueTask.CompletedTask;

    public void Complete(OutputStream stream) { }
}

internal sealed class StreamSink(Stream target) : IOutputSink
{
    public async ValueTask WriteAsync(OutputStream stream, ReadOnlyMemory<byte> data)
    {
        await target.WriteAsync(data).ConfigureAwait(false);
        await target.FlushAsync().ConfigureAwait(false);
    }

    public void Complete(OutputStream stream) { }
}
