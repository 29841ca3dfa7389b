namespace Corral.Server.Hosting;

/// <summary>Server settings, bound from the <c>Corral</c> configuration section (appsettings.json, <c>Corral__…</c> environment variables).</summary>
public sealed class CorralOptions
{
    /// <summary>The configuration section.</summary>
    public const string Section = "Corral";

    /// <summary>Tasks that run at the same time. Default: 4.</summary>
    public int MaxConcurrentTasks { get; set; } = 4;

    /// <summary>Tasks that may wait for a slot; beyond that, 429. Default: 32.</summary>
    public int MaxQueuedTasks { get; set; } = 32;

    /// <summary>The <c>Retry-After</c> sent with 429 and 503. Default: 5 s.</summary>
    public int RetryAfterSeconds { get; set; } = 5;

    /// <summary>Default <c>limits.timeoutSeconds</c>: the whole task. Default: 3600.</summary>
    public double DefaultTimeoutSeconds { get; set; } = 3600;

    /// <summary>Default <c>limits.stallTimeoutSeconds</c>: no output at all. Default: 900 (long tool calls are silent). 0 turns it off.</summary>
    public double DefaultStallTimeoutSeconds { get; set; } = 900;

    /// <summary>Longest <c>?wait=</c> honoured. Default: 3600.</summary>
    public double MaxWaitSeconds { get; set; } = 3600;

    /// <summary>After an interrupt request, how long to wait for the agent's result before the process ladder. Default: 10.</summary>
    public double InterruptGraceSeconds { get; set; } = 10;

    /// <summary>After the result, how long the agent may take to exit once stdin is closed. Default: 10.</summary>
    public double ExitGraceSeconds { get; set; } = 10;

    /// <summary>Process ladder: wait after closing stdin before the first signal. Default: 5.</summary>
    public double CloseInputGraceSeconds { get; set; } = 5;

    /// <summary>Process ladder: wait between SIGTERM and SIGKILL. Default: 5.</summary>
    public double TerminateGraceSeconds { get; set; } = 5;

    /// <summary>Idle time after which an event stream gets a keep-alive comment. Default: 15.</summary>
    public double KeepAliveSeconds { get; set; } = 15;

    /// <summary>Where relative <c>workdir</c>s live. Default: <c>&lt;data&gt;/workspaces</c>.</summary>
    public string? WorkspaceRoot { get; set; }

    /// <summary>The Claude Code agent.</summary>
    public ClaudeCodeAgentOptions ClaudeCode { get; set; } = new();

    /// <summary>The command agent.</summary>
    public CommandAgentOptions Command { get; set; } = new();

    /// <summary>The <c>codex</c> agent (<c>codex exec --json</c>).</summary>
    public CliAgentOptions Codex { get; set; } = new() { Executable = "codex" };

    /// <summary>The <c>gemini</c> agent (<c>gemini --output-format stream-json</c>).</summary>
    public CliAgentOptions Gemini { get; set; } = new() { Executable = "gemini" };
}

/// <summary>Settings of an agent CLI.</summary>
public sealed class CliAgentOptions
{
    /// <summary>Whether tasks may use it. Default: true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The CLI: a path, or a name looked up on <c>PATH</c>.</summary>
    public string Executable { get; set; } = "";
}

/// <summary>Settings of the <c>claude-code</c> agent.</summary>
public sealed class ClaudeCodeAgentOptions
{
    /// <summary>Whether tasks may use it. Default: true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>The CLI: a path, or a name looked up on <c>PATH</c>. Default: <c>claude</c>.</summary>
    public string Executable { get; set; } = "claude";

    /// <summary>Arguments added to every launch.</summary>
    public List<string> ExtraArguments { get; set; } = [];
}

/// <summary>Settings of the <c>command</c> agent (runs any argv).</summary>
public sealed class CommandAgentOptions
{
    /// <summary>Whether tasks may use it. Default: true.</summary>
    public bool Enabled { get; set; } = true;
}
