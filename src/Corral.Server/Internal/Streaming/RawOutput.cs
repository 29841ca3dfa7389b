using System.Buffers;
using System.IO.Pipelines;
using Corral.Processes;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Streaming;

/// <summary>The exact bytes a task wrote to one stream, as stored (within its output cap, secrets masked), from its journal.</summary>
internal sealed class RawOutput(IJournalStore journals)
{
    private const int FlushThreshold = 64 * 1024;

    /// <summary>Writes the stream's bytes as they are now (a running task's continue after this).</summary>
    public async Task WriteAsync(PipeWriter output, string id, OutputStream stream, CancellationToken cancellationToken)
    {
        using var reader = journals.Read(id);
        long limit = journals.Watch(id, reader).Limit;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (reader.TryRead(limit, out var e))
            {
                if (!e.IsOutput || e.Stream != stream)
                    continue;
                for (long at = 0; at < e.Length;)
                {
                    int n = reader.ReadData(e, at, buffer);
                    if (n == 0)
                        break;
                    output.Write(buffer.AsSpan(0, n));
                    at += n;
                    if (output.UnflushedBytes >= FlushThreshold)
                        await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                }
            }

            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
