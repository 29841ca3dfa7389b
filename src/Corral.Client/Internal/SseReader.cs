using System.Runtime.CompilerServices;
using System.Text;

namespace Corral.Client.Internal;

/// <summary>One server-sent event as framed on the wire.</summary>
/// <param name="Id">The <c>id:</c> field, when the event had one.</param>
/// <param name="Name">The <c>event:</c> field (<c>message</c> when absent).</param>
/// <param name="Data">The <c>data:</c> lines, joined with <c>\n</c>.</param>
internal sealed record SseFrame(string? Id, string Name, string Data);

/// <summary>The SSE wire format (WHATWG HTML, "server-sent events"): fields, comments, blank-line dispatch.</summary>
internal static class SseReader
{
    /// <summary>Thrown when nothing at all (not even a comment) arrived for the idle timeout.</summary>
    public sealed class IdleException(TimeSpan idle) : TimeoutException($"The event stream was silent for {idle.TotalSeconds:0.#} s.");

    /// <summary>
    /// The frames of <paramref name="stream"/> until it ends. Each line must come within <paramref name="idle"/>
    /// (the server's keep-alive comments count), or <see cref="IdleException"/> is thrown.
    /// </summary>
    public static async IAsyncEnumerable<SseFrame> ReadAsync(Stream stream, TimeSpan idle, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(stream, new UTF8Encoding(false), detectEncodingFromByteOrderMarks: false, bufferSize: 16 * 1024);
        using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        string? id = null, name = null;
        var data = new StringBuilder();
        bool hasData = false;
        while (true)
        {
            timer.CancelAfter(idle);
            string? line;
            try
            {
                // ReadLineAsync ends a line at \n, \r or \r\n: the three terminators of the format.
                line = await reader.ReadLineAsync(timer.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new IdleException(idle);
            }

            if (line is null)
                yield break; // a frame without its blank line is not dispatched
            if (line.Length == 0)
            {
                if (hasData || name is not null)
                    yield return new SseFrame(id, name ?? "message", data.ToString());
                id = null;
                name = null;
                data.Clear();
                hasData = false;
                continue;
            }

            if (line[0] == ':')
                continue; // a comment: the keep-alive
            int colon = line.IndexOf(':');
            string field = colon < 0 ? line : line[..colon];
            string value = colon < 0 ? "" : line[(colon + 1)..];
            if (value.StartsWith(' '))
                value = value[1..];
            switch (field)
            {
                case "id" when !value.Contains('\0'):
                    id = value;
                    break;
                case "event":
                    name = value;
                    break;
                case "data":
                    if (hasData)
                        data.Append('\n');
                    data.Append(value);
                    hasData = true;
                    break;
            }
        }
    }
}
