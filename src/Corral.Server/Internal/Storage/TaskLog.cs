using System.Text;
using System.Text.Json;

namespace Corral.Server.Internal.Storage;

/// <summary>
/// A task's two append-only NDJSON files: <c>transcript.ndjson</c> (every line the agent printed; JSON lines verbatim,
/// anything else wrapped) and <c>events.ndjson</c> (the numbered events that SSE serves). Each append reaches the OS
/// before it is announced, so a reader, a reconnecting client or the next server process always finds it.
/// </summary>
internal sealed class TaskLog : IDisposable
{
    public const string EventsFile = "events.ndjson";
    public const string TranscriptFile = "transcript.ndjson";
    private static readonly byte[] Newline = "\n"u8.ToArray();

    private readonly Lock _gate = new();
    private readonly FileStream _events;
    private readonly FileStream _transcript;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastId;

    public TaskLog(string directory)
    {
        System.IO.Directory.CreateDirectory(directory);
        Directory = directory;
        _events = OpenAppend(Path.Combine(directory, EventsFile));
        _transcript = OpenAppend(Path.Combine(directory, TranscriptFile));
        _lastId = ReadLastId(Path.Combine(directory, EventsFile));
    }

    public string Directory { get; }

    public long LastId
    {
        get
        {
            lock (_gate)
                return _lastId;
        }
    }

    /// <summary>Completes at the next append (or at dispose).</summary>
    public Task Changed
    {
        get
        {
            lock (_gate)
                return _changed.Task;
        }
    }

    public void AppendTranscript(string line, bool verbatim, string stream)
    {
        lock (_gate)
        {
            if (verbatim)
            {
                _transcript.Write(Encoding.UTF8.GetBytes(line));
            }
            else
            {
                using var writer = new Utf8JsonWriter(_transcript);
                writer.WriteStartObject();
                writer.WriteString("corral", stream);
                writer.WriteString("text", line);
                writer.WriteEndObject();
            }

            _transcript.Write(Newline);
            _transcript.Flush();
        }
    }

    /// <summary>Appends one event and returns its sequence id.</summary>
    public long AppendEvent(string name, object data)
    {
        TaskCompletionSource changed;
        long id;
        lock (_gate)
        {
            id = ++_lastId;
            using (var writer = new Utf8JsonWriter(_events))
            {
                writer.WriteStartObject();
                writer.WriteNumber("id", id);
                writer.WriteString("event", name);
                writer.WritePropertyName("data");
                JsonSerializer.Serialize(writer, data, data.GetType(), ApiJson.Options);
                writer.WriteEndObject();
            }

            _events.Write(Newline);
            _events.Flush();
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        changed.TrySetResult();
        return id;
    }

    public void Dispose()
    {
        lock (_gate)
        {
            _events.Dispose();
            _transcript.Dispose();
            _changed.TrySetResult();
        }
    }

    private static FileStream OpenAppend(string path)
    {
        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.None);
        if (stream.Length > 0)
        {
            // A crash mid-append leaves a partial last line: end it, so the next line stands on its own.
            using var check = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            check.Seek(-1, SeekOrigin.End);
            if (check.ReadByte() != '\n')
            {
                stream.Write(Newline);
                stream.Flush();
            }
        }

        return stream;
    }

    private static long ReadLastId(string path)
    {
        long last = 0;
        using var reader = new EventLogReader(path, 0);
        foreach (var e in reader.ReadAvailable())
            last = e.Id;
        return last;
    }
}

/// <summary>One event as stored: its id, name and raw JSON data.</summary>
internal readonly record struct StoredEvent(long Id, string Name, string Data);

/// <summary>Reads <c>events.ndjson</c> incrementally; a line still being written is left for the next call.</summary>
internal sealed class EventLogReader(string path, long after) : IDisposable
{
    private readonly FileStream? _file = File.Exists(path)
        ? new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16)
        : null;

    private readonly MemoryStream _partial = new();
    private readonly byte[] _buffer = new byte[1 << 16];

    public List<StoredEvent> ReadAvailable()
    {
        var events = new List<StoredEvent>();
        if (_file is null)
            return events;
        int n;
        while ((n = _file.Read(_buffer)) > 0)
        {
            int start = 0;
            for (int i = 0; i < n; i++)
            {
                if (_buffer[i] != '\n')
                    continue;
                _partial.Write(_buffer, start, i - start);
                start = i + 1;
                if (Parse(_partial.GetBuffer().AsSpan(0, (int)_partial.Length)) is { } e && e.Id > after)
                    events.Add(e);
                _partial.SetLength(0);
            }

            _partial.Write(_buffer, start, n - start);
        }

        return events;
    }

    private static StoredEvent? Parse(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty)
            return null;
        try
        {
            var reader = new Utf8JsonReader(line);
            using var doc = JsonDocument.ParseValue(ref reader);
            var root = doc.RootElement;
            return new StoredEvent(root.GetProperty("id").GetInt64(), root.GetProperty("event").GetString()!, root.GetProperty("data").GetRawText());
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            return null; // the torn tail of a crash
        }
    }

    public void Dispose()
    {
        _file?.Dispose();
        _partial.Dispose();
    }
}
