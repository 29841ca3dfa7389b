namespace Corral.Client;

public sealed partial class CorralClient
{
    /// <summary>
    /// Opens the task's transcript (<c>GET /v1/tasks/{id}/transcript</c>): NDJSON, every line the agent printed (JSON
    /// lines verbatim; other lines as <c>{"corral":"stdout"|"stderr","text":…}</c>). Dispose the stream when done.
    /// </summary>
    /// <param name="id">The task id.</param>
    /// <param name="cancellationToken">Stops waiting for the response; reads take their own token.</param>
    /// <returns>The body, streamed as the server sends it.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public Task<Stream> OpenTranscriptAsync(string id, CancellationToken cancellationToken = default) =>
        OpenAsync(TaskPath(id) + "/transcript", cancellationToken);

    /// <summary>
    /// Opens the exact bytes the task wrote to one stream (<c>GET /v1/tasks/{id}/output?stream=</c>), up to its output
    /// cap. Dispose the stream when done.
    /// </summary>
    /// <param name="id">The task id.</param>
    /// <param name="stream">Which stream.</param>
    /// <param name="cancellationToken">Stops waiting for the response; reads take their own token.</param>
    /// <returns>The bytes, streamed as the server sends them.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">No answer.</exception>
    public Task<Stream> OpenOutputAsync(string id, OutputStreamKind stream = OutputStreamKind.Stdout, CancellationToken cancellationToken = default) =>
        OpenAsync(TaskPath(id) + "/output?stream=" + (stream == OutputStreamKind.Stderr ? "stderr" : "stdout"), cancellationToken);

    /// <summary>Reads all of one output stream of the task.</summary>
    /// <param name="id">The task id.</param>
    /// <param name="stream">Which stream.</param>
    /// <param name="cancellationToken">Stops the download.</param>
    /// <returns>The bytes.</returns>
    /// <exception cref="CorralNotFoundException">No such task.</exception>
    /// <exception cref="CorralUnreachableException">No answer, or the connection broke during the download.</exception>
    public async Task<byte[]> GetOutputAsync(string id, OutputStreamKind stream = OutputStreamKind.Stdout, CancellationToken cancellationToken = default)
    {
        await using var body = await OpenOutputAsync(id, stream, cancellationToken).ConfigureAwait(false);
        using var copy = new MemoryStream();
        try
        {
            await body.CopyToAsync(copy, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Unreachable(e, cancellationToken) is { } unreachable)
        {
            throw unreachable;
        }

        return copy.ToArray();
    }

    private async Task<Stream> OpenAsync(string path, CancellationToken cancellationToken)
    {
        var response = await SendCheckedAsync(Request(HttpMethod.Get, path), cancellationToken, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        try
        {
            // Disposing the content stream releases the connection (and so the response).
            return await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }
}
