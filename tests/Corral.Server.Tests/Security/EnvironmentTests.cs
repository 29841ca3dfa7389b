using System.Net;
using System.Net.Http.Headers;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Security;

/// <summary>A task's environment is built, never inherited: nothing of the server's reaches it unless allowed, and never the token.</summary>
public sealed class EnvironmentTests
{
    private static Dictionary<string, string> Variables(string output) =>
        output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2)
            .GroupBy(p => p[0]).ToDictionary(g => g.Key, g => g.First()[1]);

    [Fact(Timeout = 120_000)]
    public async Task A_task_gets_the_minimal_environment_what_its_agent_allows_and_its_request_and_never_the_token()
    {
        string data = Directory.CreateTempSubdirectory("corral-env-").FullName;
        string token = "tok-" + Guid.NewGuid().ToString("N");
        var server = await ServerProcess.StartAsync(data, s =>
        {
            s["Corral:Command:Environment:FROM_CONFIG"] = "configured";
            s["Corral:Command:PassEnvironment:0"] = "PASSED_ALONG";
            s["Corral:Command:PassEnvironment:1"] = "CORRAL_TOKEN"; // listed by mistake: still never passed
        }, new Dictionary<string, string>
        {
            ["CORRAL_TOKEN"] = token,
            ["PASSED_ALONG"] = "yes",
            ["SERVER_ONLY"] = "must not leak",
        });
        try
        {
            server.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "env" }, env = new { FROM_REQUEST = "asked" } }, wait: 30);
            Assert.Equal(HttpStatusCode.OK, r.Status);
            var env = Variables(r.Body!["result"]!["text"]!.GetValue<string>());

            Assert.Equal("configured", env["FROM_CONFIG"]);
            Assert.Equal("yes", env["PASSED_ALONG"]);
            Assert.Equal("asked", env["FROM_REQUEST"]);
            Assert.Equal(r.Id, env["CORRAL_TASK_ID"]);
            Assert.Matches("^[0-9a-f]{32}$", env["CORRAL_TREE_ID"]);
            Assert.Equal(Environment.GetEnvironmentVariable("PATH"), env["PATH"]);
            Assert.True(env.ContainsKey("HOME"));
            Assert.False(env.ContainsKey("CORRAL_TOKEN"));
            Assert.False(env.ContainsKey("SERVER_ONLY"));
            Assert.DoesNotContain(env.Values, v => v.Contains(token));
            string[] allowed = ["PATH", "HOME", "LANG", "TZ", "USER", "LOGNAME", "TERM", "CORRAL_TASK_ID", "CORRAL_TREE_ID", "FROM_CONFIG", "PASSED_ALONG", "FROM_REQUEST", "PWD", "SHLVL", "_"];
            Assert.All(env.Keys, k => Assert.Contains(k, allowed));
        }
        finally
        {
            server.Kill();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task The_token_can_come_from_a_file_and_then_is_not_on_the_command_line()
    {
        string data = Directory.CreateTempSubdirectory("corral-tokenfile-").FullName;
        string token = "tok-" + Guid.NewGuid().ToString("N");
        string file = Path.Combine(data, "token");
        File.WriteAllText(file, token + "\n");
        var server = await ServerProcess.StartAsync(data, arguments: ["--token-file", file]);
        try
        {
            Assert.Equal(HttpStatusCode.Unauthorized, (await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks")).Status);
            server.Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            Assert.Equal(HttpStatusCode.OK, (await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks")).Status);
            Assert.DoesNotContain(token, Proc.CommandLine(server.Pid));
        }
        finally
        {
            server.Kill();
            Directory.Delete(data, true);
        }
    }
}
