using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Corral.Deploy.Tests;

/// <summary>The container image builds on this machine without a registry, and a task runs inside it.</summary>
public sealed class ContainerImageTests
{
    private static readonly string Storage = Path.Combine(Repository.Root, "artifacts", "podman");

    private static string[] Podman => ["--root", Path.Combine(Storage, "root"), "--runroot", Path.Combine(Storage, "run")];

    [Fact(Timeout = 900_000)]
    public async Task The_image_builds_without_a_registry_and_serves_tasks_behind_a_token_as_an_unprivileged_user_and_stops_cleanly()
    {
        if (Unavailable() is { } why)
            Assert.Skip(why);
        var (built, tag, buildError) = await Repository.RunAsync(Repository.Deploy("container", "build.sh"), ["corral:test"], TimeSpan.FromMinutes(10),
            new Dictionary<string, string> { ["CORRAL_PODMAN_ARGS"] = string.Join(' ', Podman) });
        Assert.True(built == 0, buildError);
        Assert.Equal("corral:test", tag.Trim());

        string name = "corral-test-" + Guid.NewGuid().ToString("N")[..8];
        int port = FreePort();
        string token = Convert.ToHexString(Guid.NewGuid().ToByteArray());
        // Host networking: no bridge, no iptables rules; the server binds loopback only.
        var (started, _, startError) = await Repository.RunAsync("podman", [.. Podman, "run", "-d", "--name", name, "--runtime", "runc", "--network=host",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000", "-e", "CORRAL_TOKEN=" + token,
            "corral:test", "serve", "--urls", $"http://127.0.0.1:{port}", "--data", "/var/lib/corral"], TimeSpan.FromMinutes(2));
        Assert.True(started == 0, startError);
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(60) };
            await Proc.WaitForAsync(async () =>
            {
                try
                {
                    return (await http.GetAsync("/readyz", TestContext.Current.CancellationToken)).StatusCode == HttpStatusCode.OK;
                }
                catch (HttpRequestException)
                {
                    return false;
                }
            }, TimeSpan.FromSeconds(60), "the server in the container to be ready");

            // The child waits (with a deadline) until its escapee has become `sleep`: ended earlier, the report could
            // name the escapee by the shell or setsid it still was.
            var body = new StringContent("""
                {"agent":"command","command":["sh","-c","id -u; setsid sleep 300 & p=$!; for i in $(seq 1000); do [ \"$(cat /proc/$p/comm)\" = sleep ] && break; sleep 0.01; done; echo inside"]}
                """, Encoding.UTF8, "application/json");
            Assert.Equal(HttpStatusCode.Unauthorized, (await http.PostAsync("/v1/tasks", body, TestContext.Current.CancellationToken)).StatusCode);
            http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
            var response = await http.PostAsync("/v1/tasks?wait=30", body, TestContext.Current.CancellationToken);
            var record = JsonNode.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken))!;
            Assert.True(response.StatusCode == HttpStatusCode.OK, record.ToJsonString());
            Assert.Equal("succeeded", record["status"]!.GetValue<string>());
            Assert.Equal("10001\ninside\n", record["result"]!["text"]!.GetValue<string>());
            Assert.Contains(record["process"]!["killed"]!.AsArray(), k => k!["command"]!.GetValue<string>().StartsWith("sleep"));

            // SIGTERM reaches corral through tini; it drains and exits 0 well within the stop timeout.
            var (stopped, _, stopError) = await Repository.RunAsync("podman", [.. Podman, "stop", "-t", "60", name], TimeSpan.FromSeconds(90));
            Assert.True(stopped == 0, stopError);
            var (_, exitCode, _) = await Repository.RunAsync("podman", [.. Podman, "inspect", "--format", "{{.State.ExitCode}}", name], TimeSpan.FromSeconds(30));
            Assert.Equal("0", exitCode.Trim());
        }
        finally
        {
            await Repository.RunAsync("podman", [.. Podman, "rm", "-f", name], TimeSpan.FromSeconds(60));
        }
    }

    private static string? Unavailable()
    {
        if (Environment.UserName != "root")
            return "building and running the image with podman here needs root (CI runs as root)";
        string[] missing = [.. new[] { "podman", "runc", "mmdebstrap" }.Where(p => !Repository.OnPath(p) && !File.Exists("/usr/sbin/" + p))];
        return missing.Length > 0 ? $"{string.Join(", ", missing)} not installed (apt-get install podman buildah runc mmdebstrap; .ci/run does)" : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
