using System.CommandLine;
using System.CommandLine.Help;
using System.CommandLine.Invocation;

namespace Corral.Cli;

/// <summary>A command whose <c>--help</c> ends with extra sections: exit status, notes, examples.</summary>
internal sealed class DocumentedCommand(string name, string description) : Command(name, description)
{
    /// <summary>Extra help sections, already formatted: a title line followed by indented lines.</summary>
    public IReadOnlyList<string> Sections { get; init; } = [];
}

/// <summary>The standard help, followed by the <see cref="DocumentedCommand.Sections"/> of the command it describes.</summary>
internal sealed class DocumentedHelpAction(HelpAction standard) : SynchronousCommandLineAction
{
    public override bool ClearsParseErrors => true;

    public override int Invoke(ParseResult parseResult)
    {
        int result = standard.Invoke(parseResult);
        if (parseResult.CommandResult.Command is DocumentedCommand { Sections.Count: > 0 } command)
        {
            var output = parseResult.InvocationConfiguration.Output;
            foreach (string section in command.Sections)
            {
                output.Write(section.TrimEnd().ReplaceLineEndings() + Environment.NewLine);
                output.WriteLine();
            }
        }

        return result;
    }

    /// <summary>Installs the documented help on <paramref name="root"/>'s help option (which applies to every subcommand).</summary>
    public static void Install(RootCommand root)
    {
        if (root.Options.OfType<HelpOption>().FirstOrDefault() is { Action: HelpAction standard } option)
            option.Action = new DocumentedHelpAction(standard);
    }
}
