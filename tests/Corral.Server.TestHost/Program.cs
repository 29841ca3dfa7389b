using Corral.Server.Hosting;

// corral serve [--urls URL] [--data DIR] [--token TOKEN] [more --Key=Value configuration]
string? urls = null, data = null, token = null;
var rest = new List<string>();
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--urls" when i + 1 < args.Length: urls = args[++i]; break;
        case "--data" when i + 1 < args.Length: data = args[++i]; break;
        case "--token" when i + 1 < args.Length: token = args[++i]; break;
        default: rest.Add(args[i]); break;
    }
}

using var stop = new CancellationTokenSource();
return await CorralServer.RunAsync(new ServerOptions { Urls = urls, DataDirectory = data, Token = token }, rest.ToArray(), stop.Token);
