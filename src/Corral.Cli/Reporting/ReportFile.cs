using System.Text.Json;
using Corral.Processes;

namespace Corral.Cli.Reporting;

/// <summary>
/// The <c>--report</c> destination: a file, or <c>-</c> for stderr (stdout belongs to the child's output).
/// Opened before the child starts, so an unwritable path fails before anything runs; left untouched (or removed,
/// if corral created it) when no run happened.
/// </summary>
internal sealed class ReportFile : IAsyncDisposable
{
    /// <summary>The <c>--report</c> value that means stderr.</summary>
    public const string StandardError = "-";

    private readonly Stream _stream;
    private readonly bool _created;
    private bool _written;

    private ReportFile(string path, Stream stream, bool created)
    {
        Path = path;
        _stream = stream;
        _created = created;
    }

    public string Path { get; }

    public static ReportFile? TryOpen(string path, out string? error)
    {
        error = null;
        if (path == StandardError)
            return new ReportFile("stderr", Console.OpenStandardError(), created: false);
        try
        {
            bool existed = File.Exists(path);
            // Not truncated yet: a failed start must not destroy an existing file.
            var stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read);
            return new ReportFile(path, stream, created: !existed);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error = $"cannot write the report '{path}': {e.Message}";
            return null;
        }
    }

    /// <summary>Replaces the file's content with <paramref name="report"/>; on failure returns a message for the user.</summary>
    public async Task<string?> WriteAsync(ProcessOutcome report)
    {
        try
        {
            if (_stream.CanSeek)
                _stream.SetLength(0);
            await JsonSerializer.SerializeAsync(_stream, report, CliJsonContext.Report).ConfigureAwait(false);
            _stream.WriteByte((byte)'\n');
            await _stream.FlushAsync().ConfigureAwait(false);
            _written = true;
            return null;
        }
        catch (IOException e)
        {
            return $"cannot write the report '{Path}': {e.Message}";
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync().ConfigureAwait(false);
        if (!_written && _created)
        {
            try
            {
                File.Delete(Path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort: an empty file is all that is left.
            }
        }
    }
}
