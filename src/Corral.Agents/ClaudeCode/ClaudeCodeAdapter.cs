using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Corral.Agents.Internal;
using Corral.Processes;

namespace Corral.Agents.ClaudeCode;

/// <summary>Settings of the Claude Code adapter.</summary>
public sealed record ClaudeCodeSettings
{
    /// <summary>The CLI: a path, or a name looked up on <c>PATH</c>. Default: <c>claude</c>.</summary>
    public string Executable { get; init; } = "claude";

    /// <summary>Arguments added to every launch, after Corral's own (for example <c>--setting-sources=</c>).</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];
}

/// <summary>
/// Runs Claude Code headless: <c>-p --output-format stream-json --verbose --input-format stream-json</c>, the prompt
/// as a stream-json user message on stdin (never an argument), stdin open until the result so an interrupt can be
/// sent, MCP servers in a per-task file with <c>--strict-mcp-config</c>.
/// </summary>
public sealed class ClaudeCodeAdapter(ClaudeCodeSettings settings) : IAgentAdapter
{
    /// <summary>The agent's name in the API.</summary>
    public const string AgentName = "claude-code";

    /// <summary>The adapter's settings.</summary>
    public ClaudeCodeSettings Settings { get; } = settings;

    /// <inheritdoc />
    public string Name => AgentName;

    /// <inheritdoc />
    public string? Executable => Settings.Executable;

    /// <inheritdoc />
    public IReadOnlyList<string> Validate(AgentRequest request)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(request.Prompt))
            errors.Add("prompt: required for claude-code.");
        if (request.Command is { Count: > 0 })
            errors.Add("command: only for the command agent.");
        if (request.ResumeSessionId is { } resume && (resume.Length == 0 || resume.StartsWith('-') || resume.Any(char.IsWhiteSpace)))
            errors.Add("resumeSessionId: not a session id.");
        if (request.NewSessionId is { } id && !Guid.TryParse(id, out _))
            errors.Add("sessionId: must be a UUID.");
        if (request.MaxTurns is < 1)
            errors.Add("limits.maxTurns: must be at least 1.");
        foreach (var (field, tools) in new[] { ("permissions.allowedTools", request.AllowedTools), ("permissions.disallowedTools", request.DisallowedTools) })
        {
            // Each rule is its own argv element after the flag; one that looks like a flag would end the list.
            if (tools?.Any(t => string.IsNullOrWhiteSpace(t) || t.StartsWith('-')) == true)
                errors.Add($"{field}: rules must be non-empty and must not start with '-'.");
        }

        if (request.McpServers is { } mcp)
        {
            foreach (var (name, server) in mcp)
            {
                if (server is not JsonObject)
                    errors.Add($"mcpServers.{name}: must be an object.");
            }
        }

        return errors;
    }

    /// <inheritdoc />
    public string? NewSessionId(AgentRequest request) => request.ResumeSessionId is null ? Guid.NewGuid().ToString() : null;

    /// <inheritdoc />
    public IAgentRun Prepare(AgentRequest request)
    {
        var args = new List<string> { "-p", "--output-format", "stream-json", "--verbose", "--input-format", "stream-json" };
        string? sessionId = null;
        if (request.ResumeSessionId is { } resume)
        {
            args.Add("--resume=" + resume);
            sessionId = resume;
        }
        else
        {
            sessionId = request.NewSessionId ?? Guid.NewGuid().ToString();
            args.Add("--session-id=" + sessionId);
        }

        if (request.Model is { } model)
            args.Add("--model=" + model);
        if (request.MaxTurns is { } turns)
            args.Add("--max-turns=" + turns);
        if (request.PermissionMode is { } mode)
            args.Add("--permission-mode=" + mode);
        if (request.AppendSystemPrompt is { } append)
            args.Add("--append-system-prompt=" + append);
        if (request.McpServers is { } servers)
        {
            Directory.CreateDirectory(request.TaskDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            string file = Path.Combine(request.TaskDirectory, "mcp.json");
            var config = new JsonObject { ["mcpServers"] = servers.DeepClone() };
            // The server's files are its own (0600): MCP configurations carry credentials.
            using (var stream = new FileStream(file, new FileStreamOptions
            {
                Mode = FileMode.Create,
                Access = FileAccess.Write,
                UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            }))
            {
                stream.Write(Encoding.UTF8.GetBytes(config.ToJsonString()));
            }
            args.AddRange(["--mcp-config", file, "--strict-mcp-config"]);
        }

        if (request.AllowedTools is { Count: > 0 } allowed)
        {
            args.Add("--allowedTools");
            args.AddRange(allowed);
        }

        if (request.DisallowedTools is { Count: > 0 } disallowed)
        {
            args.Add("--disallowedTools");
            args.AddRange(disallowed);
        }

        args.AddRange(Settings.ExtraArguments);

        // CLAUDECODE makes the CLI believe it runs nested inside another Claude Code session.
        var env = new Dictionary<string, string?> { ["CLAUDECODE"] = null };
        foreach (var (key, value) in request.Environment ?? new Dictionary<string, string>())
            env[key] = value;

        var spec = new ProcessSpec(Settings.Executable, args)
        {
            WorkingDirectory = request.WorkingDirectory,
            Environment = env,
            InheritEnvironment = request.InheritEnvironment,
            StandardInput = InputSource.Pipe,
            Limits = new OutputLimits { MaxLineLength = 32 << 20, Overflow = OverflowPolicy.Wait },
        };

        var user = new JsonObject
        {
            ["type"] = "user",
            ["session_id"] = "",
            ["message"] = new JsonObject { ["role"] = "user", ["content"] = request.Prompt },
            ["parent_tool_use_id"] = null,
        };

        return new ClaudeCodeRun(spec, Encoding.UTF8.GetBytes(user.ToJsonString() + "\n"), sessionId, request.WorkingDirectory, Transcripts(request));
    }

    /// <summary>
    /// Where the agent keeps its session transcripts: a directory whose contents are the agent's (the anchor no read
    /// leaves) and the projects directory in it. <c>$CLAUDE_CONFIG_DIR/projects</c> when the agent has that variable,
    /// else <c>$HOME/.claude/projects</c>; <c>null</c> with neither.
    /// </summary>
    private static (string Anchor, string Projects)? Transcripts(AgentRequest request) =>
        Lookup(request, "CLAUDE_CONFIG_DIR") is { Length: > 0 } config ? (config, "projects")
        : Lookup(request, "HOME") is { Length: > 0 } home ? (home, Path.Combine(".claude", "projects"))
        : null;

    /// <summary>
    /// The projects directory of a task whose HOME is <paramref name="home"/>, relative to it, when it is in it: session
    /// state kept outside it (a <c>CLAUDE_CONFIG_DIR</c> elsewhere) is not the task's own, so it is neither saved nor restored.
    /// </summary>
    private static string? ProjectsIn(AgentRequest request, string home)
    {
        if (Transcripts(request) is not { } at)
            return null;
        string full = Path.GetFullPath(Path.Combine(at.Anchor, at.Projects));
        string root = Path.GetFullPath(home);
        return full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? Path.GetRelativePath(root, full) : null;
    }

    /// <summary>The largest session transcript carried to a later task (a larger one is not saved).</summary>
    internal const long MaxSessionBytes = 256L << 20;

    /// <inheritdoc />
    public void SaveSession(AgentRequest request, string sessionId, string home, string store)
    {
        if (!IsSessionId(sessionId) || ProjectsIn(request, home) is not { } relative)
            return;
        string projects = Path.Combine(home, relative);
        if (!Directory.Exists(projects))
            return;
        // The id is the one the agent reported. Only this session's own (the id Corral gave it, or resumed) may replace
        // saved state: another id is taken only while no session has it, so no task can overwrite another's.
        bool own = sessionId == request.NewSessionId || sessionId == request.ResumeSessionId;
        string target = Path.Combine(store, sessionId + ".jsonl");
        if (!own && File.Exists(target))
            return;
        foreach (string project in Directory.EnumerateDirectories(projects))
        {
            using var source = OwnFiles.OpenRead(home, Path.Combine(relative, Path.GetFileName(project), sessionId + ".jsonl"), MaxSessionBytes);
            if (source is null)
                continue;
            Directory.CreateDirectory(store);
            string partial = $"{target}.{Guid.NewGuid():N}.partial";
            try
            {
                bool whole;
                using (var copy = new FileStream(partial, FileMode.CreateNew, FileAccess.Write))
                    whole = OwnFiles.CopyAtMost(source, copy, MaxSessionBytes);
                if (whole)
                    File.Move(partial, target, overwrite: own);
            }
            catch (IOException) when (!own && File.Exists(target))
            {
                // Another task saved this id meanwhile: its state stays.
            }
            finally
            {
                File.Delete(partial);
            }

            return;
        }
    }

    /// <inheritdoc />
    public void RestoreSession(AgentRequest request, string home, string store)
    {
        // Claude Code looks for a session under the project directory of its working directory.
        if (request.ResumeSessionId is not { } id || !IsSessionId(id) || !File.Exists(Path.Combine(store, id + ".jsonl"))
            || ProjectsIn(request, home) is not { } relative)
            return;
        string project = Path.Combine(home, relative, TranscriptRecovery.Slug(request.WorkingDirectory));
        Directory.CreateDirectory(project);
        File.Copy(Path.Combine(store, id + ".jsonl"), Path.Combine(project, id + ".jsonl"), overwrite: true);
    }

    private static bool IsSessionId(string id) => id.Length is > 0 and <= 200 && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_');

    /// <summary>A variable as the agent process sees it.</summary>
    private static string? Lookup(AgentRequest request, string name) =>
        request.Environment?.TryGetValue(name, out var v) == true ? v
        : request.InheritEnvironment ? System.Environment.GetEnvironmentVariable(name) : null;

    internal static byte[] InterruptLine(string requestId) =>
        Encoding.UTF8.GetBytes(JsonSerializer.Serialize(new { type = "control_request", request_id = requestId, request = new { subtype = "interrupt" } }) + "\n");
}
