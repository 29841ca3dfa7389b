using System.CommandLine;
using System.Globalization;
using System.CommandLine.Parsing;
using Corral.Cli.Reporting;
using Corral.Cli.Running;
using Corral.Processes;

namespace Corral.Cli.Commands;

/// <summary><c>corral run [options] -- CMD [ARGS…]</c>: run a command as a contained tree, pass its output through, exit with its status.</summary>
internal static class RunCommand
{
    private static readonly TimeSpan DefaultGrace = new TeardownOptions().Grace;
    private static readonly TimeSpan LingerWait = new ProcessSpec("corral").LingerTimeout;

    public static Command Create()
    {
        var timeout = DurationOption("--timeout", "Tear the tree down after this long and exit 124. Default: no timeout.", allowZero: false);

        var grace = DurationOption("--grace", $"Time between the first signal (SIGTERM, or the signal corral received) and SIGKILL. Default: {DefaultGrace.TotalSeconds:0.###}s.", allowZero: true);

        var linger = new Option<LingerPolicy?>("--linger")
        {
            Description = "What to do with processes CMD leaves running when it exits: kill them (SIGTERM, grace, SIGKILL), " +
                          $"wait for them (up to {LingerWait.TotalSeconds:0.###}s, then kill), or detach (leave them; stop reading their output). Default: kill.",
            HelpName = "kill|wait|detach",
            CustomParser = ParseLinger,
        };
        linger.CompletionSources.Add("kill", "wait", "detach");

        var fallback = new Option<bool>("--fallback")
        {
            Description = "Contain the tree with a session and a /proc scan even where a cgroup is available.",
        };

        var user = new Option<ProcessUser?>("--user")
        {
            Description = "Run CMD as this user: a name, or a uid (one without a passwd entry is accepted, with a gid of the same number), " +
                          "optionally with :GID. Groups, gid and uid are set before CMD starts, with no_new_privs; needs root. " +
                          "The environment is corral's: set HOME and USER with env if CMD needs them.",
            HelpName = "NAME|UID[:GID]",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                try
                {
                    return ProcessUser.Parse(text);
                }
                catch (ArgumentException e)
                {
                    result.AddError($"Invalid value for --user: {e.Message.Split(" (Parameter")[0]}");
                    return null;
                }
            },
        };

        var memoryMax = ParsedOption<long>("--memory-max",
            "Most memory the whole tree may use (cgroup memory.max, swap off); past it the kernel OOM-kills inside the tree. Units: K, M, G, T (1K = 1024).",
            "SIZE", text => ByteSize.TryParse(text, out long bytes, out string? error) ? (bytes, null) : (null, error));

        var pidsMax = ParsedOption<int>("--pids-max",
            "Most processes and threads the tree may have at once (cgroup pids.max); past it fork fails.",
            "N", text => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0
                ? (n, null)
                : (null, $"'{text}' is not a positive whole number"));

        var cpuMax = ParsedOption<double>("--cpu-max",
            "CPU time the tree may use, in cores (cgroup cpu.max): 0.2 is a fifth of one core, 1.5 one and a half. From 0.01.",
            "CORES", text => double.TryParse(text, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double cores) && cores is >= 0.01 and <= 1 << 20
                ? (cores, null)
                : (null, $"'{text}' is not a number of cores from 0.01"));

        var requireLimits = new Option<bool>("--require-limits")
        {
            Description = "Fail (exit 125) instead of running when a limit cannot be enforced on this host. Default: run, and report it as not enforced.",
        };

        var report = new Option<string?>("--report")
        {
            Description = "Write the outcome as JSON to FILE, or to stderr with '-' (exit code, signal, reason, containment, timings, killed processes, byte counts).",
            HelpName = "FILE",
        };
        report.Validators.Add(result =>
        {
            if (result.GetValueOrDefault<string?>() is { } path && string.IsNullOrWhiteSpace(path))
                result.AddError("--report needs a file name.");
        });

        var command = new Argument<string[]>("CMD")
        {
            Description = "The program (a path, or a name looked up on PATH) and its arguments. Put them after '--' so that their options are not taken for corral's.",
            HelpName = "CMD [ARGS...]",
            Arity = ArgumentArity.OneOrMore,
            // Everything from CMD on belongs to CMD, even without '--': `corral run grep --timeout x` greps.
            CaptureRemainingTokens = true,
        };

        var run = new DocumentedCommand("run",
            "Run a command as a contained process tree: its output passes through byte for byte, corral finishes " +
            "when it exits, tears down whatever it left behind, and exits with its status.")
        {
            Sections =
            [
                """
                Exit status:
                  CMD's exit code  CMD exited by itself
                  128+N            signal N killed CMD (130 after a forwarded SIGINT, 143 after SIGTERM)
                  124              --timeout passed; the tree was torn down
                  125              corral itself failed (e.g. the report cannot be written)
                  126              CMD is not executable
                  127              CMD was not found
                  2                bad usage (unknown option, bad duration, no CMD)
                """,
                """
                Input, output and signals:
                  CMD's stdout and stderr go to corral's stdout and stderr unchanged, as they arrive.
                  CMD's stdin is corral's stdin when that is redirected (a pipe or a file), otherwise /dev/null.
                  SIGINT, SIGTERM and SIGHUP sent to corral are forwarded to the whole tree, followed by
                  --grace and SIGKILL; corral waits for the tree to be gone and exits with CMD's status.
                  If corral's stdout or stderr reader goes away, the tree is stopped the same way (SIGTERM).
                """,
                """
                Users and limits:
                  --user runs the whole tree as that user; no process of it can regain privileges (no_new_privs).
                  --memory-max, --pids-max and --cpu-max are set on the tree's cgroup before CMD starts. They need
                  a cgroup v2 hierarchy with those controllers delegated to corral; where the host has none, CMD
                  runs without them and the report says so ("enforced": false), unless --require-limits is given.
                  A CMD the OOM killer kills exits 137 like any SIGKILL; the report's "resources" says why
                  ("limitHit": "memory", "oomKills"), with peak memory, CPU time and peak processes.
                """,
                """
                Examples:
                  corral run -- make test
                  corral run --timeout 10m --report run.json -- ./agent --task build
                  corral run --fallback --linger wait -- sh -c 'server & sleep 1'
                  corral run --user nobody --memory-max 2G --pids-max 256 --cpu-max 1.5 --report - -- ./agent
                """,
            ],
        };
        run.Add(timeout);
        run.Add(grace);
        run.Add(linger);
        run.Add(fallback);
        run.Add(user);
        run.Add(memoryMax);
        run.Add(pidsMax);
        run.Add(cpuMax);
        run.Add(requireLimits);
        run.Add(report);
        run.Add(command);

        run.SetAction((parse, _) =>
        {
            if (MistypedOption(parse, command) is { } unknown)
                return Task.FromResult(CommandLineHost.UsageError(parse, $"Unrecognized option '{unknown}'. A CMD that starts with '-' must follow '--'."));
            return ExecuteAsync(new RunSettings(
                parse.GetValue(command) ?? [],
                parse.GetValue(timeout),
                parse.GetValue(grace) ?? DefaultGrace,
                parse.GetValue(linger) ?? LingerPolicy.Kill,
                parse.GetValue(fallback),
                parse.GetValue(report))
            {
                User = parse.GetValue(user),
                Limits = Limits(parse.GetValue(memoryMax), parse.GetValue(pidsMax), parse.GetValue(cpuMax), parse.GetValue(requireLimits)),
            });
        });
        return run;
    }

    private static ResourceLimits? Limits(long? memory, int? pids, double? cpu, bool required) =>
        memory is null && pids is null && cpu is null
            ? null
            : new ResourceLimits { MemoryMaxBytes = memory, PidsMax = pids, CpuMax = cpu, Required = required };

    /// <summary>
    /// CMD's first word when it looks like an option and was not preceded by '--': almost surely a typo for one
    /// of corral's options (<c>corral run --timout 5 -- x</c>), which must not be executed as a program.
    /// </summary>
    private static string? MistypedOption(ParseResult parse, Argument<string[]> command)
    {
        var first = parse.GetResult(command)?.Tokens.FirstOrDefault();
        if (first is null || !first.Value.StartsWith('-') || first.Value == "-")
            return null;
        for (int i = 1; i < parse.Tokens.Count; i++)
        {
            if (ReferenceEquals(parse.Tokens[i], first))
                return parse.Tokens[i - 1].Type == TokenType.DoubleDash ? null : first.Value;
        }

        return null;
    }

    /// <summary>Runs the tree; returns corral's exit code. Never throws for the child's or the user's mistakes.</summary>
    internal static async Task<int> ExecuteAsync(RunSettings settings)
    {
        // Opened before anything runs: a report that cannot be written fails fast instead of after a long run.
        ReportFile? reportFile = null;
        if (settings.ReportPath is { } reportPath && (reportFile = ReportFile.TryOpen(reportPath, out string? reportError)) is null)
            return Fail(ExitCodes.CorralFailure, reportError!);

        await using var _ = reportFile;
        using var forwarder = new StopForwarder();
        // A closed reader of our stdout/stderr: stop the tree, as SIGPIPE would have stopped CMD writing there directly.
        var stdout = StandardStream.Output(() => forwarder.Request(StopSignal.Terminate));
        var stderr = StandardStream.Error(() => forwarder.Request(StopSignal.Terminate));

        // A terminal stays with corral (CMD runs in its own session and could not use it as a terminal anyway, and
        // reading it from a background job would stop corral with SIGTTIN); redirected input is forwarded.
        bool forwardInput = Console.IsInputRedirected;
        var spec = new ProcessSpec(settings.Command[0], settings.Command[1..])
        {
            StandardInput = forwardInput ? InputSource.Pipe : InputSource.Null,
            StandardOutput = OutputTarget.ToStream(stdout),
            StandardError = OutputTarget.ToStream(stderr),
            Containment = settings.Fallback ? ContainmentMode.Session : ContainmentMode.Auto,
            Timeout = settings.Timeout,
            Teardown = new TeardownOptions { Grace = settings.Grace },
            Linger = settings.Linger,
            User = settings.User,
            ResourceLimits = settings.Limits,
        };

        ProcessTree tree;
        try
        {
            tree = ProcessTree.Start(spec);
        }
        catch (ProcessSpawnException e)
        {
            int code = e.Failure switch
            {
                SpawnFailure.FileNotFound => ExitCodes.NotFound,
                SpawnFailure.NotExecutable => ExitCodes.NotExecutable,
                _ => ExitCodes.CorralFailure,
            };
            return Fail(code, e.Message);
        }

        ProcessOutcome outcome;
        await using (tree)
        {
            forwarder.Attach(tree);
            if (forwardInput)
                InputForwarder.Start(Console.OpenStandardInput(), tree.StandardInput);
            outcome = await tree.Completion.ConfigureAwait(false);
        }

        if (reportFile is not null && await reportFile.WriteAsync(outcome).ConfigureAwait(false) is { } writeError)
            return Fail(ExitCodes.CorralFailure, writeError);

        return outcome.ShellExitCode;
    }

    private static int Fail(int exitCode, string message)
    {
        Console.Error.WriteLine("corral: " + message.ReplaceLineEndings(" "));
        return exitCode;
    }

    private static Option<TimeSpan?> DurationOption(string name, string description, bool allowZero) =>
        ParsedOption<TimeSpan>(name, description + " Units: ms, s, m, h; a plain number is seconds.", "DURATION", text =>
            !Duration.TryParse(text, out var value, out string? error) ? (null, error)
            : value == TimeSpan.Zero && !allowZero ? (null, "it must be greater than zero")
            : (value, null));

    /// <summary>An option whose one value <paramref name="parse"/> turns into a value, or into the words of a usage error.</summary>
    private static Option<T?> ParsedOption<T>(string name, string description, string helpName, Func<string?, (T? Value, string? Error)> parse)
        where T : struct => new(name)
    {
        Description = description,
        HelpName = helpName,
        CustomParser = result =>
        {
            var (value, error) = parse(result.Tokens.Count > 0 ? result.Tokens[0].Value : null);
            if (error is not null)
                result.AddError($"Invalid value for {name}: {error}.");
            return error is null ? value : null;
        },
    };

    private static LingerPolicy? ParseLinger(ArgumentResult result)
    {
        string? text = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
        switch (text?.ToLowerInvariant())
        {
            case "kill": return LingerPolicy.Kill;
            case "wait": return LingerPolicy.Wait;
            case "detach": return LingerPolicy.Detach;
            default:
                result.AddError($"Invalid value for --linger: '{text}'; use kill, wait or detach.");
                return null;
        }
    }

}

/// <summary>The parsed options of one <c>corral run</c>.</summary>
internal sealed record RunSettings(
    string[] Command,
    TimeSpan? Timeout,
    TimeSpan Grace,
    LingerPolicy Linger,
    bool Fallback,
    string? ReportPath)
{
    /// <summary><c>--user</c>: who CMD runs as; <c>null</c> keeps corral's identity.</summary>
    public ProcessUser? User { get; init; }

    /// <summary><c>--memory-max</c>, <c>--pids-max</c>, <c>--cpu-max</c>, <c>--require-limits</c>; <c>null</c> when none is given.</summary>
    public ResourceLimits? Limits { get; init; }
}
