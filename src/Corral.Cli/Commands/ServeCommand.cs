using System.CommandLine;
using Corral.Server.Hosting;

namespace Corral.Cli.Commands;

/// <summary><c>corral serve</c>: the HTTP runtime that runs agent tasks (Corral.Server).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var urls = new Option<string?>("--urls")
        {
            Description = "Address(es) to listen on, separated by ';'. Default: http://127.0.0.1:8080.",
            HelpName = "URL",
        };
        var data = new Option<string?>("--data")
        {
            Description = "Directory for the task database and logs. Default: ./data.",
            HelpName = "DIR",
        };
        var token = new Option<string?>("--token")
        {
            Description = $"Require 'Authorization: Bearer TOKEN' on every API call (also from ${CorralServer.TokenVariable}). Mandatory on a non-loopback address. Visible in ps: prefer --token-file.",
            HelpName = "TOKEN",
        };
        var tokenFile = new Option<string?>("--token-file")
        {
            Description = "Read the token from FILE (its content, trimmed), so it does not appear in the process list.",
            HelpName = "FILE",
        };
        var postgres = new Option<string?>("--postgres")
        {
            Description = "Join a fleet: keep tasks, their events and the queue in this PostgreSQL (an Npgsql connection string; also Corral:Postgres:ConnectionString). Default: SQLite in the data directory, one node.",
            HelpName = "CONNECTION",
        };
        var nodeId = new Option<string?>("--node-id")
        {
            Description = "This node's name in the fleet (records say which node ran a task). Default: the host name and a random suffix, kept in the data directory.",
            HelpName = "NAME",
        };

        var serve = new DocumentedCommand("serve",
            "Run the HTTP runtime: agent tasks (Claude Code, commands) with live events, cancel, history, and " +
            "results that survive disconnects and restarts.")
        {
            TreatUnmatchedTokensAsErrors = false,
            Sections =
            [
                """
                Configuration:
                  Any other setting of the 'Corral' section can follow as --Corral:NAME=VALUE
                  (e.g. --Corral:MaxConcurrentTasks=8), or come from appsettings.json or
                  Corral__NAME environment variables. See src/Corral.Server/README.md.
                """,
                """
                Exit status:
                  0  stopped cleanly (SIGINT or SIGTERM: running tasks are interrupted and recorded)
                  2  refused to start (e.g. a public address without a token) or bad usage
                """,
            ],
        };
        serve.Add(urls);
        serve.Add(data);
        serve.Add(token);
        serve.Add(tokenFile);
        serve.Add(postgres);
        serve.Add(nodeId);
        serve.SetAction((parse, cancellationToken) => CorralServer.RunAsync(
            new ServerOptions
            {
                Urls = parse.GetValue(urls),
                DataDirectory = parse.GetValue(data),
                Token = parse.GetValue(token),
                TokenFile = parse.GetValue(tokenFile),
                Postgres = parse.GetValue(postgres),
                NodeId = parse.GetValue(nodeId),
            },
            parse.UnmatchedTokens.ToArray(),
            cancellationToken));
        return serve;
    }
}
