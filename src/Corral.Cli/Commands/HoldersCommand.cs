using System.CommandLine;
using System.Text.Json;
using Corral.Cli.Reporting;
using Corral.Processes;

namespace Corral.Cli.Commands;

/// <summary><c>corral holders PID</c>: who holds the write end of a process's stdout/stderr pipes (why a reader never sees EOF).</summary>
internal static class HoldersCommand
{
    public static Command Create()
    {
        var pid = new Argument<int>("PID")
        {
            Description = "The process whose stdout and stderr pipes to examine.",
            HelpName = "PID",
        };
        pid.CustomParser = result =>
        {
            string? text = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
            if (int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int value) && value > 0)
                return value;
            result.AddError($"'{text}' is not a process id: PID must be a positive number.");
            return 0;
        };

        var json = new Option<bool>("--json")
        {
            Description = "Print a JSON array of {pid, stream, descriptors, command} instead of a table.",
        };

        var holders = new DocumentedCommand("holders",
            "List the processes holding the write end of a process's stdout and stderr pipes: " +
            "as long as any of them lives, whoever reads those pipes never sees EOF.")
        {
            Sections =
            [
                """
                Output:
                  One line per holder and stream, PID itself included: pid, stream (stdout or stderr),
                  the holder's descriptors for that pipe, and its command line. Nothing is listed when
                  neither stream is a pipe.
                """,
                """
                Exit status:
                  0  listed (possibly nothing)
                  1  no such process, or it cannot be inspected (another user's process)
                  2  bad usage
                """,
            ],
        };
        holders.Add(pid);
        holders.Add(json);
        holders.SetAction(parse => Execute(parse.GetValue(pid), parse.GetValue(json)));
        return holders;
    }

    internal static int Execute(int pid, bool json)
    {
        if (!Directory.Exists($"/proc/{pid}"))
            return Fail($"no process with pid {pid}.");

        string? stdoutLink, stderrLink;
        try
        {
            // readlink only: stat on /proc/PID/fd/N can block on a process stuck in D state.
            stdoutLink = new FileInfo($"/proc/{pid}/fd/1").LinkTarget;
            stderrLink = new FileInfo($"/proc/{pid}/fd/2").LinkTarget;
        }
        catch (UnauthorizedAccessException)
        {
            return Fail($"cannot inspect process {pid}: permission denied (its descriptors belong to another user).");
        }
        catch (IOException e) when (!Directory.Exists($"/proc/{pid}"))
        {
            return Fail($"process {pid} exited: {e.Message}");
        }

        var found = PipeHolders.Find(pid);
        if (!Directory.Exists($"/proc/{pid}"))
            return Fail($"process {pid} exited while it was examined.");

        var entries = found
            .Select(h => new HolderEntry(h.Pid, h.Stream, h.Descriptors, h.CommandLine))
            .OrderBy(h => h.Stream)
            .ThenBy(h => h.Pid)
            .ToArray();

        if (json)
        {
            Console.Out.WriteLine(JsonSerializer.Serialize<IReadOnlyList<HolderEntry>>(entries, CliJsonContext.Readable.IReadOnlyListHolderEntry));
            return ExitCodes.Success;
        }

        if (!IsPipe(stdoutLink) && !IsPipe(stderrLink))
        {
            Console.Error.WriteLine($"corral: process {pid}'s stdout ({stdoutLink ?? "closed"}) and stderr ({stderrLink ?? "closed"}) are not pipes; nothing to list.");
            return ExitCodes.Success;
        }

        Console.Out.WriteLine($"{"PID",-8} {"STREAM",-7} {"FDS",-10} COMMAND");
        foreach (var entry in entries)
            Console.Out.WriteLine($"{entry.Pid,-8} {StreamNameConverter.Name(entry.Stream),-7} {string.Join(',', entry.Descriptors),-10} {entry.Command}");
        return ExitCodes.Success;
    }

    private static bool IsPipe(string? link) => link?.StartsWith("pipe:", StringComparison.Ordinal) == true;

    private static int Fail(string message)
    {
        Console.Error.WriteLine("corral: " + message);
        return ExitCodes.Failure;
    }
}
