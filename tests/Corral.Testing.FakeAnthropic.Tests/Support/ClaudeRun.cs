using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Processes;

namespace Corral.Testing.FakeAnthropic.Tests.Support;

/// <summary>How to start one CLI run: the flags the server will use.</summary>
internal sealed record ClaudeRunOptions
{
    public string? Model { get; init; }
    public int? MaxTurns { get; init; }
    public string? PermissionMode { get; init; }
    public IReadOnlyList<string> AllowedTools { get; init; } = [];

    /// <summary>When set, written to a file and passed as <c>--mcp-config FILE --strict-mcp-config</c>.</summary>
    public string? McpConfigJson { get; init; }

    public int? MaxRetries { get; init; } = 0;
    public IReadOnlyDictionary<string, string?> ExtraEnvironment { get; init; } = new Dictionary<string, string?>();
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>Hard bound on the whole process tree (teardown after it).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromMinutes(3);
}

/// <summary>
/// One real Claude Code process in headless stream-json mode, run in a contained <see cref="ProcessTree"/>
/// with a fresh HOME and working directory. Collects stdout JSON lines and stderr; condition waits have deadlines.
/// Disposing kills whatever is left and writes the transcript to the test output.
/// </summary>
internal sealed class ClaudeRun : IAsyncDisposable
{
    private readonly ProcessTree _tree;
    private readonly Task _reader;
    private readonly Lock _lock = new();
    private readonly List<JsonObject> _lines = [];
    private readonly List<(TimeSpan At, string Text)> _transcript = [];
    private readonly StringBuilder _stderr = new();
    private readonly List<(Func<JsonObject, bool> Predicate, TaskCompletionSource<JsonObject> Tcs)> _waiters = [];
    private readonly TaskCompletionSource _outputEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Stopwatch _clock;
    private readonly SemaphoreSlim _stdinLock = new(1, 1);
    private bool _stdinClosed;

    private ClaudeRun(ProcessTree tree, string root, string sessionId, IReadOnlyList<string> arguments, Stopwatch clock)
    {
        _tree = tree;
        Root = root;
        SessionId = sessionId;
        Arguments = arguments;
        _clock = clock;
        _reader = Task.Run(ReadAsync);
    }

    public string Root { get; }
    public string Home => Path.Combine(Root, "home");
    public string WorkDirectory => Path.Combine(Root, "work");
    public string SessionId { get; }
    public IReadOnlyList<string> Arguments { get; }
    public int Pid => _tree.Pid;
    public TimeSpan Elapsed => _clock.Elapsed;
    public Task<ProcessOutcome> Completion => _tree.Completion;

    public IReadOnlyList<JsonObject> Lines
    {
        get { lock (_lock) return _lines.ToArray(); }
    }

    public string Stderr
    {
        get { lock (_lock) return _stderr.ToString(); }
    }

    /// <summary>When each line type first appeared (for the README's timings).</summary>
    public TimeSpan? FirstSeen(string type, string? subtype = null)
    {
        lock (_lock)
        {
            foreach (var (at, text) in _transcript)
            {
                if (text.Contains($"\"type\":\"{type}\"", StringComparison.Ordinal)
                    && (subtype is null || text.Contains($"\"subtype\":\"{subtype}\"", StringComparison.Ordinal)))
                    return at;
            }
        }

        return null;
    }

    public static ClaudeRun Start(FakeAnthropicServer api, ClaudeRunOptions? options = null)
    {
        options ??= new ClaudeRunOptions();
        var root = Directory.CreateTempSubdirectory("corral-claude-").FullName;
        Directory.CreateDirectory(Path.Combine(root, "home"));
        Directory.CreateDirectory(Path.Combine(root, "work"));
        var sessionId = Guid.NewGuid().ToString();

        List<string> args =
        [
            "-p", "--output-format", "stream-json", "--verbose", "--input-format", "stream-json",
            $"--session-id={sessionId}",
        ];
        if (options.Model is { } model)
            args.AddRange(["--model", model]);
        if (options.MaxTurns is { } maxTurns)
            args.AddRange(["--max-turns", maxTurns.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        if (options.PermissionMode is { } mode)
            args.AddRange(["--permission-mode", mode]);
        if (options.AllowedTools.Count > 0)
            args.AddRange(["--allowedTools", string.Join(",", options.AllowedTools)]);
        if (options.McpConfigJson is { } mcp)
        {
            var file = Path.Combine(root, "mcp.json");
            File.WriteAllText(file, mcp);
            args.AddRange(["--mcp-config", file, "--strict-mcp-config"]);
        }

        args.AddRange(options.ExtraArguments);

        var env = ClaudeCodeKit.Environment(api, Path.Combine(root, "home"), options.MaxRetries);
        foreach (var (name, value) in options.ExtraEnvironment)
            env[name] = value;

        var spec = new ProcessSpec(ClaudeCodeKit.ExecutablePath, args)
        {
            WorkingDirectory = Path.Combine(root, "work"),
            Environment = env,
            InheritEnvironment = false,
            StandardInput = InputSource.Pipe,
            Timeout = options.Timeout,
            Limits = new OutputLimits { MaxLineLength = 16 << 20 },
        };
        var clock = Stopwatch.StartNew();
        var tree = ProcessTree.Start(spec);
        return new ClaudeRun(tree, root, sessionId, args, clock);
    }

    /// <summary>Writes the stream-json user line the server will send.</summary>
    public Task SendUserAsync(string prompt) => WriteLineAsync(new JsonObject
    {
        ["type"] = "user",
        ["session_id"] = "",
        ["message"] = new JsonObject { ["role"] = "user", ["content"] = prompt },
        ["parent_tool_use_id"] = null,
    });

    public Task SendInterruptAsync(string requestId = "req_1") => WriteLineAsync(new JsonObject
    {
        ["type"] = "control_request",
        ["request_id"] = requestId,
        ["request"] = new JsonObject { ["subtype"] = "interrupt" },
    });

    public async Task WriteLineAsync(JsonObject message)
    {
        var bytes = Encoding.UTF8.GetBytes(message.ToJsonString() + "\n");
        await _stdinLock.WaitAsync();
        try
        {
            ObjectDisposedException.ThrowIf(_stdinClosed, typeof(ClaudeRun));
            Log("stdin", message.ToJsonString());
            await _tree.StandardInput.WriteAsync(bytes);
            await _tree.StandardInput.FlushAsync();
        }
        finally
        {
            _stdinLock.Release();
        }
    }

    /// <summary>Closes stdin (EOF): after a result, the CLI then exits.</summary>
    public async Task CloseInputAsync()
    {
        await _stdinLock.WaitAsync();
        try
        {
            if (_stdinClosed)
                return;
            _stdinClosed = true;
            Log("stdin", "<close>");
            await _tree.StandardInput.DisposeAsync();
        }
        finally
        {
            _stdinLock.Release();
        }
    }

    public async Task<JsonObject> WaitForLineAsync(Func<JsonObject, bool> predicate, TimeSpan timeout, string what)
    {
        var tcs = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            var existing = _lines.FirstOrDefault(predicate);
            if (existing is not null)
                return existing;
            if (_outputEnded.Task.IsCompleted)
                throw new InvalidOperationException($"stdout ended without {what}.\n{Describe()}");
            _waiters.Add((predicate, tcs));
        }

        var finished = await Task.WhenAny(tcs.Task, _outputEnded.Task, Task.Delay(timeout));
        if (finished == tcs.Task)
            return await tcs.Task;
        lock (_lock)
        {
            _waiters.RemoveAll(w => w.Tcs == tcs);
            if (_lines.FirstOrDefault(predicate) is { } late)
                return late;
        }

        throw finished == _outputEnded.Task
            ? new InvalidOperationException($"stdout ended without {what}.\n{Describe()}")
            : new TimeoutException($"No {what} within {timeout.TotalSeconds:0.#} s.\n{Describe()}");
    }

    public Task<JsonObject> WaitForTypeAsync(string type, TimeSpan timeout, string? subtype = null) =>
        WaitForLineAsync(l => Str(l, "type") == type && (subtype is null || Str(l, "subtype") == subtype), timeout,
            subtype is null ? $"a '{type}' line" : $"a '{type}/{subtype}' line");

    public Task<JsonObject> WaitForResultAsync(TimeSpan timeout) => WaitForTypeAsync("result", timeout);

    /// <summary>Closes stdin and waits for the tree to finish (the CLI exits on stdin EOF once its turn is over).</summary>
    public async Task<ProcessOutcome> FinishAsync(TimeSpan timeout)
    {
        await CloseInputAsync();
        try
        {
            return await _tree.Completion.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"The CLI did not exit within {timeout.TotalSeconds:0.#} s of stdin EOF.\n{Describe()}");
        }
    }

    public static string? Str(JsonNode? node, string property) =>
        node?[property] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"claude {string.Join(' ', Arguments)}  (pid {_tree.Pid}, root {Root})");
        lock (_lock)
        {
            foreach (var (at, text) in _transcript)
                sb.Append($"[{at.TotalSeconds,7:0.000}] ").AppendLine(text.Length > 2000 ? text[..2000] + "…" : text);
            if (_stderr.Length > 0)
                sb.AppendLine("stderr:").AppendLine(_stderr.Length > 8000 ? _stderr.ToString(_stderr.Length - 8000, 8000) : _stderr.ToString());
        }

        return sb.ToString();
    }

    public async ValueTask DisposeAsync()
    {
        ProcessOutcome? outcome = null;
        try
        {
            if (!_tree.Completion.IsCompleted)
            {
                Log("test", "disposing a still-running tree: tearing it down");
                _tree.Cancel();
            }

            outcome = await _tree.Completion.WaitAsync(TimeSpan.FromSeconds(30));
            await _reader.WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e)
        {
            Log("test", "dispose: " + e.Message);
        }
        finally
        {
            await _tree.DisposeAsync();
            if (outcome is not null)
                Log("exit", $"reason={outcome.Reason} code={outcome.ExitCode} signal={outcome.Signal} killed=[{string.Join("; ", outcome.Killed)}]");
            TestContext.Current.TestOutputHelper?.WriteLine(Describe());
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (Exception)
            {
                // Best effort; it's under /tmp.
            }
        }
    }

    private async Task ReadAsync()
    {
        try
        {
            await foreach (var line in _tree.ReadLinesAsync())
            {
                if (line.Stream == OutputStream.StandardError)
                {
                    lock (_lock)
                        _stderr.AppendLine(line.Text);
                    continue;
                }

                Log("out", line.Text);
                if (!line.Text.StartsWith('{'))
                    continue;
                JsonObject? json;
                try
                {
                    json = JsonNode.Parse(line.Text) as JsonObject;
                }
                catch (JsonException)
                {
                    continue;
                }

                if (json is null)
                    continue;
                List<TaskCompletionSource<JsonObject>> hits = [];
                lock (_lock)
                {
                    _lines.Add(json);
                    foreach (var waiter in _waiters.ToArray())
                    {
                        if (waiter.Predicate(json))
                        {
                            hits.Add(waiter.Tcs);
                            _waiters.Remove(waiter);
                        }
                    }
                }

                foreach (var hit in hits)
                    hit.TrySetResult(json);
            }
        }
        finally
        {
            _outputEnded.TrySetResult();
        }
    }

    private void Log(string channel, string text)
    {
        lock (_lock)
            _transcript.Add((_clock.Elapsed, channel == "out" ? text : $"<{channel}> {text}"));
    }
}
