using System.CommandLine;
using System.CommandLine.Invocation;

namespace Corral.Cli;

/// <summary>How corral parses and invokes its commands: one place for the exit-code and signal policy.</summary>
internal static class CommandLineHost
{
    public static async Task<int> InvokeAsync(RootCommand root, string[] args)
    {
        DocumentedHelpAction.Install(root);
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0 && parse.Action is ParseErrorAction)
        {
            // Short and on stderr, exit 2: a usage error must not look like a child's exit code 1, nor bury the message under the full help.
            return UsageError(parse, parse.Errors.Select(e => e.Message).ToArray());
        }

        var configuration = new InvocationConfiguration
        {
            // corral handles SIGINT/SIGTERM itself (forwarding them to the tree); System.CommandLine must not.
            ProcessTerminationTimeout = null,
            EnableDefaultExceptionHandler = false,
        };
        try
        {
            return await parse.InvokeAsync(configuration).ConfigureAwait(false);
        }
        catch (Exception e)
        {
            // A bug in corral, not the user's mistake: one line, not a stack trace, unless asked for.
            Console.Error.WriteLine($"corral: unexpected error: {e.GetType().Name}: {e.Message}".ReplaceLineEndings(" "));
            if (Environment.GetEnvironmentVariable("CORRAL_DEBUG") is "1" or "true")
                Console.Error.WriteLine(e);
            return ExitCodes.CorralFailure;
        }
    }

    /// <summary>Reports bad usage the same way everywhere: the messages, a pointer to the help, exit code 2.</summary>
    public static int UsageError(ParseResult parse, params string[] messages)
    {
        foreach (string message in messages)
            Console.Error.WriteLine("corral: " + message);
        Console.Error.WriteLine($"Run '{CommandPath(parse)} --help' for usage.");
        return ExitCodes.Usage;
    }

    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var result = parse.CommandResult; result is not null; result = result.Parent as System.CommandLine.Parsing.CommandResult)
            names.Add(result.Command is RootCommand ? "corral" : result.Command.Name);
        names.Reverse();
        return string.Join(' ', names);
    }
}
