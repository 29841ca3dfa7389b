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
            Assert.Contains("\"succeeded\"", await response.Content.ReadAsStringAsync(ct));

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

    /// <summary>Every directory under <paramref name="root"/> (itself included) by device and inode, as <c>find</c> reports them.</summary>
    private static async Task<Dictionary<(ulong, ulong), string>> DirectoryInodesAsync(string root, CancellationToken ct)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("find", [root, "-xdev", "-type", "d", "-printf", "%D %i %p\\n"]) { RedirectStandardOutput = true };
        using var find = System.Diagnostics.Process.Start(psi)!;
        string output = await find.StandardOutput.ReadToEndAsync(ct);
        await find.WaitForExitAsync(ct);
        Assert.Equal(0, find.ExitCode);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split(' ', 3))
            .ToDictionary(f => (KernelDevice(ulong.Parse(f[0], CultureInfo.InvariantCulture)), ulong.Parse(f[1], CultureInfo.InvariantCulture)), f => f[2]);
    }

    /// <summary>A device number as the kernel writes it in fdinfo (major &lt;&lt; 20 | minor), from the C library's encoding.</summary>
    private static ulong KernelDevice(ulong dev)
    {
        ulong major = ((dev >> 8) & 0xfff) | ((dev >> 32) & ~0xfffUL);
        ulong minor = (dev & 0xff) | ((dev >> 12) & ~0xffUL);
        return (major << 20) | minor;
    }

    /// <summary>The device and inode of every inotify watch this process holds, from <c>/proc/self/fdinfo</c>.</summary>
    private static IEnumerable<(ulong, ulong)> WatchedInodes()
    {
        foreach (string info in Directory.EnumerateFiles("/proc/self/fdinfo"))
        {
            string text;
            try { text = File.ReadAllText(info); }
            catch (IOException) { continue; } // closed meanwhile
            foreach (string line in text.Split('\n').Where(l => l.StartsWith("inotify wd:", StringComparison.Ordinal)))
            {
                var fields = line.Split(' ');
                string Field(string name) => fields.First(f => f.StartsWith(name, StringComparison.Ordinal))[name.Length..];
                yield return (ulong.Parse(Field("sdev:"), NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                              ulong.Parse(Field("ino:"), NumberStyles.HexNumber, CultureInfo.InvariantCulture));
            }
        }
    }
}
