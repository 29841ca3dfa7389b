using System.Buffers;
using System.IO.Pipelines;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Streaming;

/// <summary>
/// A task's transcript as NDJSON, made from its journal and stream files: every line the agent printed, in the
/// order it was read; JSON lines of its protocol verbatim, anything else as
/// <c>{"corral":"stdout"|"stderr","text":…}</c> (with <c>fragment</c> and <c>base64</c> where they apply).
/// </summary>
internal sealed class Transcript(IJournalStore journals)
{
    private const int FlushThreshold = 64 * 1024;

    /// <summary>Writes the transcript as it is now (a running task's continues to grow after this).</summary>
    public async Task WriteAsync(PipeWriter output, string id, CancellationToken cancellationToken)
    {
        using var reader = journals.Read(id);
        long limit = journals.Watch(id, reader).Limit;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (reader.TryRead(limit, out var e))
            {
                if (!e.IsLine)
                    continue;
                bool stderr = e.Stream == Corral.Processes.OutputStream.StandardError;
                if ((e.Flags & LineFlags.Json) != 0 && !stderr)
                {
                    LineJson.WriteVerbatim(output, reader, e, buffer);
                }
                else
                {
                    output.Write(stderr ? "{\"corral\":\"stderr\","u8 : "{\"corral\":\"stdout\","u8);
                    LineJson.WriteFields(output, reader, e, buffer);
                    output.Write("}"u8);
                }

                output.Write("\n"u8);
                if (output.UnflushedBytes >= FlushThreshold)
                    await output.FlushAsync(cancellationToken).ConfigureAwait(false);
            }

            await output.FlushAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
