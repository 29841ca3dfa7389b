using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

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
}

/// <summary>How a run's process ended.</summary>
/// <param name="ExitCode">The CLI's exit code.</param>
/// <param name="ExitedAfter">From spawn to exit.</param>
/// <param name="Leftovers">Processes still in the CLI's process group right after it exited (then SIGKILLed).</param>
internal sealed record RunExit(int ExitCode, TimeSpan ExitedAfter, IReadOnlyList<string> Leftovers);

/// <summary>
/// One real Claude Code process in headless stream-json mode, with a fresh HOME and working directory, spawned
/// through <c>setsid</c> so it leads its own process group (pgid = pid) and cleanup can signal the group.
/// Collects stdout JSON lines and stderr; every wait has a deadline. Disposing kills whatever is left of the
/// group and writes the transcript to the test output.
/// </summary>
/// <remarks>
/// Deliberately plain <see cref="Process"/>, not Corral.Processes, so the kit does not depend on the library the
/// server is built with. Bash-tool commands run in their own sessions and escape a group kill: tests that start
/// long commands track and kill them by pid.
/// </remarks>
internal sealed class ClaudeRun : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _stdoutReader;
    private readonly Task _stderrReader;
    private readonly Lock _lock = new();
    private readonly List<JsonObject> _lines = [];
    private readonly List<(TimeSpan At, string Text)> _transcript = [];
    private readonly StringBuilder _stderr = new();
    private readonly List<(Func<JsonObject, bool> Predicate, TaskCompletionSource<JsonObject> Tcs)> _waiters = [];
    private readonly TaskCompletionSource _outputEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Stopwatch _clock;
    private readonly SemaphoreSlim _stdinLock = new(1, 1);
    private bool _stdinClosed;
    private readonly Task<TimeSpan> _exitedAt;
    private RunExit? _exit;

    private ClaudeRun(Process process, string root, string sessionId, IReadOnlyList<string> arguments, Stopwatch clock)
    {
        _process = process;
        Root = root;
        SessionId = sessionId;
        Arguments = arguments;
        _clock = clock;
        Pid = process.Id;
        _exitedAt = WatchExitAsync();
        _stdoutReader = Task.Run(ReadStdoutAsync);
        _stderrReader = Task.Run(ReadStderrAsync);
    }

    public string Root { get; }
    public string Home => Path.Combine(Root, "home");
    public string WorkDirectory => Path.Combine(Root, "work");
    public string SessionId { get; }
    public IReadOnlyList<string> Arguments { get; }
    public int Pid { get; }
    public TimeSpan Elapsed => _clock.Elapsed;

    public IReadOnlyList<JsonObject> Lines
    {
        get { lock (_lock) return _lines.ToArray(); }
    }

    public string Stderr
    {
        get { lock (_lock) return _stderr.ToString(); }
    }

    /// <summary>When a line of this type first appeared (for the README's timings).</summary>
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

        var psi = new ProcessStartInfo("setsid")
        {
            WorkingDirectory = Path.Combine(root, "work"),
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardInputEncoding = new UTF8Encoding(false),
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(ClaudeCodeKit.ExecutablePath);
        foreach (var arg in args)
            psi.ArgumentList.Add(arg);
        psi.Environment.Clear(); // nothing from the test runner's environment (real keys, proxies, CLAUDECODE…)
        foreach (var (name, value) in env)
        {
            if (value is not null)
                psi.Environment[name] = value;
        }

        var clock = Stopwatch.StartNew();
        var process = Process.Start(psi) ?? throw new InvalidOperationException("setsid claude did not start");
        return new ClaudeRun(process, root, sessionId, args, clock);
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
        await _stdinLock.WaitAsync();
        try
        {
            ObjectDisposedException.ThrowIf(_stdinClosed, typeof(ClaudeRun));
            Log("stdin", message.ToJsonString());
            await _process.StandardInput.WriteAsync(message.ToJsonString() + "\n");
            await _process.StandardInput.FlushAsync();
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
            try
            {
                _process.StandardInput.Close();
            }
            catch (IOException)
            {
                // The CLI is already gone (EPIPE on the final flush).
            }
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

    /// <summary>
    /// Closes stdin and waits for the CLI to exit (it does on stdin EOF once its turn is over), then reports and
    /// SIGKILLs anything left in its process group.
    /// </summary>
    public async Task<RunExit> FinishAsync(TimeSpan timeout)
    {
        await CloseInputAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"The CLI did not exit within {timeout.TotalSeconds:0.#} s of stdin EOF.\n{Describe()}");
        }

        return RecordExit();
    }

    public static string? Str(JsonNode? node, string property) =>
        node?[property] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    public string Describe()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"claude {string.Join(' ', Arguments)}  (pid {Pid}, root {Root})");
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
        try
        {
            if (!_process.HasExited)
            {
                Log("test", "disposing a still-running CLI: SIGTERM to its group, SIGKILL after 3 s");
                ProcessGroup.Signal(Pid, ProcessGroup.SIGTERM);
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                try
                {
                    await _process.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    ProcessGroup.Signal(Pid, ProcessGroup.SIGKILL);
                    using var kill = new CancellationTokenSource(TimeSpan.FromSeconds(10));
                    await _process.WaitForExitAsync(kill.Token);
                }
            }

            RecordExit();
            // Readers end at EOF, which comes once nothing holds the pipes; bounded in case something escaped.
            await Task.WhenAll(_stdoutReader, _stderrReader).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e)
        {
            Log("test", "dispose: " + e.Message);
        }
        finally
        {
            TestContext.Current.TestOutputHelper?.WriteLine(Describe());
            _process.Dispose();
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

    private RunExit RecordExit()
    {
        lock (_lock)
        {
            if (_exit is not null)
                return _exit;
        }

        var leftovers = ProcessGroup.Members(Pid).Select(p => $"{p} {Proc.CommandLine(p)}").ToArray();
        if (leftovers.Length > 0)
            ProcessGroup.Signal(Pid, ProcessGroup.SIGKILL);
        var exit = new RunExit(_process.ExitCode, _exitedAt.IsCompletedSuccessfully ? _exitedAt.Result : _clock.Elapsed, leftovers);
        Log("exit", $"code={exit.ExitCode} after={exit.ExitedAfter.TotalSeconds:0.000}s leftovers=[{string.Join("; ", exit.Leftovers)}]");
        lock (_lock)
            return _exit ??= exit;
    }

    private async Task<TimeSpan> WatchExitAsync()
    {
        await _process.WaitForExitAsync();
        return _clock.Elapsed;
    }

    private async Task ReadStdoutAsync()
    {
        try
        {
            while (await _process.StandardOutput.ReadLineAsync() is { } line)
            {
                Log("out", line);
                if (!line.StartsWith('{'))
                    continue;
                JsonObject? json;
                try
                {
                    json = JsonNode.Parse(line) as JsonObject;
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

    private async Task ReadStderrAsync()
    {
        while (await _process.StandardError.ReadLineAsync() is { } line)
        {
            lock (_lock)
                _stderr.AppendLine(line);
        }
    }

    private void Log(string channel, string text)
    {
        lock (_lock)
            _transcript.Add((_clock.Elapsed, channel == "out" ? text : $"<{channel}> {text}"));
    }
}
