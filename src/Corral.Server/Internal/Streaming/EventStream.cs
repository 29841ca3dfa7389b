using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;
using Corral.Server.Internal.Scheduling;
using Corral.Server.Internal.Storage;
using Corral.Server.Internal.Storage.Journal;

namespace Corral.Server.Internal.Streaming;

/// <summary>
/// Serves a task's events as Server-Sent Events from its journal on disk: replay and live are one path, and a
/// follower costs one small read buffer plus what the socket holds, whatever the size of the output or how far
/// behind the follower is. Output lines are rendered from their bytes in pieces, never loaded whole. A follower
/// that stops reading is dropped once a write has waited <c>slowClient</c> (the server's own minimum data rate may
/// drop it sooner).
/// </summary>
/// <remarks>
/// Written by hand rather than with <c>TypedResults.ServerSentEvents</c>: keep-alives are SSE comments, a large
/// event is written in pieces, and a replay is flushed in batches instead of once per event.
/// </remarks>
internal sealed class EventStream(Scheduler scheduler, IJournalStore journals, TimeProvider time)
{
    /// <summary>Unflushed bytes after which a flush is awaited (the back-pressure point).</summary>
    private const int FlushThreshold = 16 * 1024;

    /// <summary>
    /// Writes the events of task <paramref name="id"/> after <paramref name="after"/> until <c>task.end</c>, the task
    /// being let go of without an end (the server stops while it is queued), or <paramref name="cancellationToken"/>.
    /// </summary>
    public async Task WriteAsync(PipeWriter output, string id, long after, TimeSpan keepAlive, TimeSpan slowClient, CancellationToken cancellationToken)
    {
        using var reader = journals.Read(id);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(8 * 1024);
        try
        {
            while (true)
            {
                // Take the wake-up signal before reading, so a commit between the read and the wait is not missed.
                var watch = journals.Watch(id, reader);
                var changed = watch.Open ? watch.Changed : null;
                long limit = watch.Limit;
                while (reader.TryRead(limit, out var e))
                {
                    if (!e.IsEvent || e.EventId <= after)
                        continue;
                    WriteEvent(output, reader, e, buffer);
                    if (e.Name == "task.end")
                    {
                        await FlushAsync(output, slowClient, cancellationToken).ConfigureAwait(false);
                        return;
                    }

                    if (output.UnflushedBytes >= FlushThreshold)
                        await FlushAsync(output, slowClient, cancellationToken).ConfigureAwait(false);
                }

                await FlushAsync(output, slowClient, cancellationToken).ConfigureAwait(false);
                if (changed is null)
                {
                    // No live writer: the journal is complete. A task that ended without task.end in its journal
                    // (data of an older version) gets one from its record; a queued task that was let go of gets none.
                    if (await scheduler.GetAsync(id, cancellationToken).ConfigureAwait(false) is { IsTerminal: true } record)
                    {
                        WriteFrame(output, null, "task.end", JsonSerializer.SerializeToUtf8Bytes(new { status = record.Status, error = record.Error }, ApiJson.Options));
                        await FlushAsync(output, slowClient, cancellationToken).ConfigureAwait(false);
                    }

                    return;
                }

                if (await Task.WhenAny(changed, Task.Delay(keepAlive, time, cancellationToken)).ConfigureAwait(false) != changed)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    output.Write(": keep-alive\n\n"u8);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void WriteEvent(PipeWriter output, JournalReader reader, in JournalEntry e, byte[] buffer)
    {
        WriteHeader(output, e.EventId, e.IsLine ? "output" : e.Name!);
        output.Write("data: "u8);
        if (e.IsLine)
        {
            output.Write(e.Stream == Corral.Processes.OutputStream.StandardError ? "{\"stream\":\"stderr\","u8 : "{\"stream\":\"stdout\","u8);
            LineJson.WriteFields(output, reader, e, buffer);
            output.Write("}"u8);
        }
        else
        {
            // The data is one line of compact JSON as the server wrote it: copied in pieces.
            for (long at = 0; at < e.Length;)
            {
                int n = reader.ReadData(e, at, buffer);
                if (n == 0)
                    break;
                output.Write(buffer.AsSpan(0, n));
                at += n;
            }
        }

        output.Write("\n\n"u8);
    }

    private static void WriteFrame(PipeWriter output, long? id, string name, ReadOnlySpan<byte> data)
    {
        WriteHeader(output, id, name);
        output.Write("data: "u8);
        output.Write(data);
        output.Write("\n\n"u8);
    }

    private static void WriteHeader(PipeWriter output, long? id, string name)
    {
        if (id is { } n)
        {
            output.Write("id: "u8);
            var span = output.GetSpan(20);
            n.TryFormat(span, out int written, provider: CultureInfo.InvariantCulture);
            output.Advance(written);
            output.Write("\n"u8);
        }

        output.Write("event: "u8);
        var nameSpan = output.GetSpan(name.Length);
        int length = System.Text.Encoding.ASCII.GetBytes(name, nameSpan);
        output.Advance(length);
        output.Write("\n"u8);
    }

    /// <summary>Flushes, and drops a client that has not taken the bytes within <paramref name="slowClient"/>.</summary>
    private async Task FlushAsync(PipeWriter output, TimeSpan slowClient, CancellationToken cancellationToken)
    {
        var flush = output.FlushAsync(cancellationToken);
        if (flush.IsCompleted)
        {
            await flush.ConfigureAwait(false);
            return;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(slowClient);
        var pending = flush.AsTask();
        if (await Task.WhenAny(pending, Task.Delay(Timeout.InfiniteTimeSpan, timeout.Token)).ConfigureAwait(false) != pending)
        {
            cancellationToken.ThrowIfCancellationRequested();
            output.CancelPendingFlush();
            throw new SlowClientException();
        }

        await pending.ConfigureAwait(false);
    }
}

/// <summary>A follower did not read what it was sent within the allowed time.</summary>
internal sealed class SlowClientException() : Exception("The client did not read its event stream in time.");
