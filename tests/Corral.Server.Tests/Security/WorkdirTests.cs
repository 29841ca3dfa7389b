using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Security;

/// <summary>A relative workdir stays inside the workspace root: a symbolic link planted there cannot take a task out.</summary>
public sealed class WorkdirTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_link_out_of_the_workspace_root_is_refused_and_one_inside_it_is_fine()
    {
        await using var server = await TestServer.StartAsync();
        string root = Path.Combine(server.DataDirectory, "workspaces");
        Directory.CreateDirectory(Path.Combine(root, "real"));
        File.CreateSymbolicLink(Path.Combine(root, "evil"), "/etc");
        File.CreateSymbolicLink(Path.Combine(root, "inner"), Path.Combine(root, "real"));

        foreach (string workdir in new[] { "evil", "evil/sub", "evil/../evil" })
        {
            var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "pwd" }, workdir });
            Assert.Equal(HttpStatusCode.BadRequest, r.Status);
            Assert.Equal("workdir", r.Body!["errors"]![0]!["field"]!.GetValue<string>());
        }

        var ok = await server.Http.CreateAsync(new { agent = "command", command = new[] { "pwd" }, workdir = "inner/sub" }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, ok.Status);
        Assert.True(Directory.Exists(Path.Combine(root, "real", "sub")));

        var file = await server.Http.CreateAsync(new { agent = "command", command = new[] { "pwd" }, workdir = "/etc/hostname" });
        Assert.Equal(HttpStatusCode.BadRequest, file.Status);
        Assert.Contains("is a file", file.Body!["detail"]!.GetValue<string>());
    }
}
