using System.Text.Json.Nodes;

namespace Corral.Testing.FakeAnthropic;

/// <summary>
/// Where the pinned Claude Code CLI and the fake MCP server live in this repository (installed by
/// <c>tests/claude-code/install.sh</c>), and the environment that makes the CLI talk only to a
/// <see cref="FakeAnthropicServer"/>. See <c>tests/claude-code/README.md</c> for why each variable is there.
/// </summary>
public static class ClaudeCodeKit
{
    /// <summary>Overrides the kit directory (default: <c>tests/claude-code</c> found above the test binaries).</summary>
    public const string KitDirectoryVariable = "CORRAL_CLAUDE_CODE_KIT";

    /// <summary>Overrides the path of the <c>claude</c> executable.</summary>
    public const string ExecutableVariable = "CORRAL_CLAUDE_CODE_PATH";

    private static readonly Lazy<string> s_kitDirectory = new(FindKitDirectory);

    /// <summary>The <c>tests/claude-code</c> directory.</summary>
    public static string KitDirectory => s_kitDirectory.Value;

    /// <summary>The pinned version, read from <c>tests/claude-code/package.json</c>.</summary>
    public static string PinnedVersion =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(KitDirectory, "package.json")))?["dependencies"]?["@anthropic-ai/claude-code"].AsString()
        ?? throw new InvalidOperationException("tests/claude-code/package.json does not pin @anthropic-ai/claude-code.");

    private static readonly Lazy<string> s_installed = new(Install);

    /// <summary>
    /// The <c>claude</c> executable. The test set-up installs the pinned version on first use (install.sh, from
    /// the npm registry; a no-op when already installed); throws with install.sh's output when that fails.
    /// </summary>
    public static string ExecutablePath =>
        System.Environment.GetEnvironmentVariable(ExecutableVariable) is { Length: > 0 } overridden
            ? File.Exists(overridden) ? overridden : throw new FileNotFoundException($"{ExecutableVariable} names a missing file: {overridden}", overridden)
            : s_installed.Value;

    private static string Install()
    {
        var path = Path.Combine(KitDirectory, "node_modules", ".bin", "claude");
        var script = Path.Combine(KitDirectory, "install.sh");
        var start = new System.Diagnostics.ProcessStartInfo("/bin/bash", [script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var install = System.Diagnostics.Process.Start(start)!;
        var stdout = install.StandardOutput.ReadToEndAsync();
        var stderr = install.StandardError.ReadToEndAsync();
        if (!install.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            install.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} did not finish within 10 minutes.");
        }

        if (install.ExitCode != 0 || !File.Exists(path))
            throw new FileNotFoundException($"Installing Claude Code with {script} failed (exit {install.ExitCode}):\n{stdout.Result}\n{stderr.Result}", path);
        return path;
    }

    /// <summary>The fake MCP server package (for <c>npx -y &lt;dir&gt;</c>).</summary>
    public static string FakeMcpPackageDirectory => Path.Combine(KitDirectory, "fake-mcp");

    /// <summary>The npm cache that install.sh pre-warmed for <c>npx -y</c> of the fake MCP package.</summary>
    public static string NpmCacheDirectory => Path.Combine(KitDirectory, ".npm-cache");

    /// <summary>
    /// The complete environment for a CLI run against <paramref name="api"/>: start the child from an EMPTY
    /// environment plus these variables (so nothing from the developer's or CI's environment leaks in, e.g. a real
    /// key, a proxy, <c>CLAUDECODE</c>). HOME should be a fresh directory per run (the CLI writes
    /// <c>~/.claude.json</c> and <c>~/.claude/projects/…/&lt;session&gt;.jsonl</c> there).
    /// </summary>
    /// <param name="api">The fake API.</param>
    /// <param name="homeDirectory">The HOME for the CLI.</param>
    /// <param name="maxRetries"><c>CLAUDE_CODE_MAX_RETRIES</c>: how often the CLI retries 429/5xx/529; <c>null</c> leaves the CLI's default (10, with backoff).</param>
    public static Dictionary<string, string?> Environment(FakeAnthropicServer api, string homeDirectory, int? maxRetries = 0)
    {
        ArgumentNullException.ThrowIfNull(api);
        ArgumentException.ThrowIfNullOrEmpty(homeDirectory);
        var env = new Dictionary<string, string?>(StringComparer.Ordinal)
        {
            // Process basics. PATH must reach node/npx (MCP servers) and bash (the Bash tool).
            ["PATH"] = System.Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
            ["HOME"] = homeDirectory,
            ["LANG"] = "C.UTF-8",
            ["SHELL"] = "/bin/bash",
            ["TMPDIR"] = System.Environment.GetEnvironmentVariable("TMPDIR") is { Length: > 0 } tmp ? tmp : "/tmp",

            // The fake API.
            ["ANTHROPIC_BASE_URL"] = api.BaseUrl,
            ["ANTHROPIC_API_KEY"] = api.ExpectedApiKey ?? FakeAnthropicServer.DefaultApiKey,

            // No traffic but the API: no telemetry/error reporting/feedback (DNS for api.anthropic.com otherwise),
            // no HEAD /api/hello probe, no update checks.
            ["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1",
            ["DISABLE_AUTOUPDATER"] = "1",

            // --permission-mode bypassPermissions (= --dangerously-skip-permissions) refuses to run as root without it.
            ["IS_SANDBOX"] = "1",

            // npx-launched MCP servers: the pre-warmed cache, and no npm chatter or registry calls for notices.
            ["npm_config_cache"] = NpmCacheDirectory,
            ["npm_config_update_notifier"] = "false",
            ["npm_config_fund"] = "false",
            ["npm_config_audit"] = "false",
        };
        if (maxRetries is { } retries)
            env["CLAUDE_CODE_MAX_RETRIES"] = retries.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return env;
    }

    /// <summary>
    /// An MCP config (the JSON for <c>--mcp-config</c>) with one stdio server named <paramref name="serverName"/>
    /// launched as <c>npx -y &lt;fake-mcp dir&gt;</c>. Its tools are <c>mcp__&lt;serverName&gt;__echo</c> and <c>…__pid</c>.
    /// </summary>
    /// <param name="serverName">The server's name in the config.</param>
    /// <param name="pidFile">When set, the server writes its pid there (<c>FAKE_MCP_PID_FILE</c>).</param>
    /// <param name="logFile">When set, the server logs each message it receives there (<c>FAKE_MCP_LOG_FILE</c>).</param>
    /// <param name="extraEnvironment">More variables for the server (e.g. <c>FAKE_MCP_IGNORE_EOF=1</c>, <c>FAKE_MCP_INIT_DELAY_MS</c>).</param>
    public static string FakeMcpConfigJson(string serverName = "fake", string? pidFile = null, string? logFile = null,
        IReadOnlyDictionary<string, string>? extraEnvironment = null)
    {
        var env = new JsonObject();
        if (pidFile is not null)
            env["FAKE_MCP_PID_FILE"] = pidFile;
        if (logFile is not null)
            env["FAKE_MCP_LOG_FILE"] = logFile;
        foreach (var (name, value) in extraEnvironment ?? new Dictionary<string, string>())
            env[name] = value;
        return new JsonObject
        {
            ["mcpServers"] = new JsonObject
            {
                [serverName] = new JsonObject
                {
                    ["command"] = "npx",
                    ["args"] = new JsonArray("-y", FakeMcpPackageDirectory),
                    ["env"] = env,
                },
            },
        }.ToJsonString();
    }

    private static string FindKitDirectory()
    {
        if (System.Environment.GetEnvironmentVariable(KitDirectoryVariable) is { Length: > 0 } overridden)
            return Path.GetFullPath(overridden);
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "claude-code");
            if (File.Exists(Path.Combine(candidate, "install.sh")))
                return candidate;
        }

        throw new DirectoryNotFoundException(
            $"tests/claude-code not found above {AppContext.BaseDirectory}; set {KitDirectoryVariable}.");
    }
}
