using System.CommandLine;
using Corral.Cli;
using Corral.Cli.Commands;

var root = new RootCommand(
    "corral: run commands as contained Linux process trees. A run finishes when the command exits, " +
    "loses none of its output, and leaves no survivor.")
{
    RunCommand.Create(),
    HoldersCommand.Create(),
    ServeCommand.Create(),
};

return await CommandLineHost.InvokeAsync(root, args);
