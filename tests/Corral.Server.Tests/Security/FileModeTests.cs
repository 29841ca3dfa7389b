using System.Net;
using System.Text.Json.Nodes;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Security;

/// <summary>Nothing in the data directory is readable by another user.</summary>
public sealed class FileModeTests
{
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    [Fact(Timeout = 120_000)]
    public async Task Every_directory_and_file_the_server_writes_is_its_owners_alone()
    {
        string data = Directory.CreateTempSubdirectory("corral-modes-").FullName;
        File.SetUnixFileMode(data, (UnixFileMode)Convert.ToInt32("755", 8)); // as an operator's mkdir leaves it
        await using (var server = await TestServer.StartAsync(dataDirectory: data))
        {
            Assert.Equal(HttpStatusCode.OK, (await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "echo out; echo err >&2" } }, wait: 30)).Status);
            Assert.Equal(HttpStatusCode.OK, (await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, workdir = "project/a" }, wait: 30)).Status);
            var mcp = new JsonObject { ["x"] = new JsonObject { ["command"] = "true" } };
            Assert.Equal(HttpStatusCode.OK, (await server.Http.CreateAsync(new JsonObject { ["agent"] = "claude-code", ["prompt"] = "hello", ["mcpServers"] = mcp }, wait: 60)).Status);
        }

        var open = new[] { data }.Concat(Directory.EnumerateFileSystemEntries(data, "*", SearchOption.AllDirectories))
            .Where(path => (File.GetUnixFileMode(path) & GroupOrOther) != 0)
            .Select(path => $"{path} {File.GetUnixFileMode(path)}").ToList();
        Directory.Delete(data, true);
        Assert.Empty(open);
    }
}
