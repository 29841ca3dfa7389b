using System.Globalization;
using System.Net.Http.Json;
using Corral.Server.Hosting;

namespace Corral.Server.Tests.Hosting;

/// <summary>A server whose working directory is its data directory (as under systemd) watches none of it.</summary>
public sealed class ConfigurationWatchTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_server_whose_content_root_is_its_data_directory_has_no_inotify_watch_in_it()
    {
        var ct = TestContext.Current.CancellationToken;
        string data = Directory.CreateTempSubdirectory("corral-watch-").FullName;
        var app = CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0", DataDirectory = data }, ["--contentRoot", data]);
        try
        {
            await app.StartAsync(ct);
            using var http = new HttpClient { BaseAddress = new Uri(CorralServer.Addresses(app).Single()) };
            using var response = await http.PostAsJsonAsync("/v1/tasks?wait=60", new { agent = "command", command = new[] { "/bin/true" } }, ct);
            Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);

            var inodes = await DirectoryInodesAsync(data, ct);
            Assert.Contains(data, inodes.Values);
            var watched = WatchedInodes().Where(inodes.ContainsKey).Select(i => inodes[i]).ToList();
            Assert.Empty(watched);
        }
        finally
        {
            await app.StopAsync(ct);
            await app.DisposeAsync();
            Directory.Delete(data, true);
        }
    }

    /// <summary>Every directory under <paramref name="root"/> (itself included) by inode, as <c>find</c> reports them.</summary>
    private static async Task<Dictionary<ulong, string>> DirectoryInodesAsync(string root, CancellationToken ct)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("find", [root, "-xdev", "-type", "d", "-printf", "%i %p\\n"]) { RedirectStandardOutput = true };
        using var find = System.Diagnostics.Process.Start(psi)!;
        string output = await find.StandardOutput.ReadToEndAsync(ct);
        await find.WaitForExitAsync(ct);
        Assert.Equal(0, find.ExitCode);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', 2))
            .ToDictionary(f => ulong.Parse(f[0], CultureInfo.InvariantCulture), f => f[1]);
    }

    /// <summary>The inode of every inotify watch this process holds, from <c>/proc/self/fdinfo</c>.</summary>
    private static IEnumerable<ulong> WatchedInodes()
    {
        foreach (string info in Directory.EnumerateFiles("/proc/self/fdinfo"))
        {
            string text;
            try { text = File.ReadAllText(info); }
            catch (IOException) { continue; } // closed meanwhile
            foreach (string line in text.Split('\n').Where(l => l.StartsWith("inotify wd:", StringComparison.Ordinal)))
            {
                string ino = line.Split(' ').First(f => f.StartsWith("ino:", StringComparison.Ordinal))[4..];
                yield return ulong.Parse(ino, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
        }
    }
}
