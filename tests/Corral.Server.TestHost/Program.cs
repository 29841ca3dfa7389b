using Corral.Server.Hosting;
using Microsoft.Data.Sqlite;

// corral serve [--urls URL] [--data DIR] [--token TOKEN] [--postgres CONNECTION] [--node-id NAME] [more --Key=Value configuration]
// or: --hold-lock DATABASE SECONDS (holds an exclusive lock on a SQLite database, as another process would)
if (args is ["--hold-lock", string database, string seconds])
{
    using var db = new SqliteConnection($"Data Source={database};Pooling=False");
    db.Open();
    using var begin = db.CreateCommand();
    begin.CommandText = "BEGIN EXCLUSIVE";
    begin.ExecuteNonQuery();
    Console.WriteLine("locked");
    Console.Out.Flush();
    Thread.Sleep(TimeSpan.FromSeconds(double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture)));
    return 0;
}

string? urls = null, data = null, token = null, tokenFile = null, postgres = null, nodeId = null;
var rest = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--urls" when i + 1 < args.Length: urls = args[++i]; break;
        case "--data" when i + 1 < args.Length: data = args[++i]; break;
        case "--token" when i + 1 < args.Length: token = args[++i]; break;
        case "--token-file" when i + 1 < args.Length: tokenFile = args[++i]; break;
        case "--postgres" when i + 1 < args.Length: postgres = args[++i]; break;
        case "--node-id" when i + 1 < args.Length: nodeId = args[++i]; break;
        default: rest.Add(args[i]); break;
    }
}

using var stop = new CancellationTokenSource();
return await CorralServer.RunAsync(new ServerOptions { Urls = urls, DataDirectory = data, Token = token, TokenFile = tokenFile, Postgres = postgres, NodeId = nodeId }, rest.ToArray(), stop.Token);
