using System.Net;
using System.Text;
using Corral.Server.Tests.Support;
using Microsoft.Data.Sqlite;

namespace Corral.Server.Tests.Security;

/// <summary>Secret values are passed to the agent and written nowhere: every occurrence reads [secret:NAME].</summary>
public sealed class SecretTests
{
    private static readonly string Secret = "sk-test-" + Guid.NewGuid().ToString("N");

    /// <summary>Every file under the data directory, the database and its WAL included, searched for the value's bytes.</summary>
    private static List<string> FilesContaining(string directory, string value)
    {
        SqliteConnection.ClearAllPools();
        byte[] needle = Encoding.UTF8.GetBytes(value);
        return Directory.EnumerateFiles(directory, "*", SearchOption.AllDirectories)
            .Where(f => File.ReadAllBytes(f).AsSpan().IndexOf(needle) >= 0).ToList();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_task_that_echoes_its_secret_leaves_no_trace_of_it_on_disk_in_events_or_in_its_record()
    {
        string operatorSecret = "op-" + Guid.NewGuid().ToString("N");
        string fromServer = "srv-" + Guid.NewGuid().ToString("N");
        string passName = "CORRAL_TEST_PASS_SECRET_" + Guid.NewGuid().ToString("N")[..8];
        Environment.SetEnvironmentVariable(passName, fromServer);
        await using var server = await TestServer.StartAsync(s =>
        {
            s["Corral:Command:Secrets:OP_SECRET"] = operatorSecret;
            s["Corral:Command:PassSecrets:0"] = passName;
        });
        // The value whole, split across two writes with a pause between them, on stderr, and in a child's argv.
        string script = """
            echo "whole: $MY_SECRET"
            printf '%s' "$MY_SECRET" | head -c 10; sleep 0.3; printf '%s\n' "$MY_SECRET" | tail -c +11
            echo "stderr: $MY_SECRET" >&2
            echo "operator: $OP_SECRET passed: $PASS"
            sleep 30 "$MY_SECRET" &
            exit 0
            """.Replace("$PASS", "$" + passName);
        var r = await server.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", script },
            secrets = new Dictionary<string, string> { ["MY_SECRET"] = Secret },
            metadata = new { note = "the value also in metadata: " + Secret },
        }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        string record = r.Body!.ToJsonString();
        Assert.DoesNotContain(Secret, record);
        Assert.Contains("[secret:MY_SECRET]", record);
        Assert.Contains("whole: [secret:MY_SECRET]", r.Body["result"]!["text"]!.GetValue<string>());
        Assert.Contains("[secret:MY_SECRET]\n", r.Body["result"]!["text"]!.GetValue<string>()); // the split one
        Assert.Contains("operator: [secret:OP_SECRET] passed: [secret:" + passName + "]", r.Body["result"]!["text"]!.GetValue<string>());

        var events = await server.Http.ReadEventsAsync(r.Id!);
        string stream = string.Join("\n", events.Select(e => e.Data?.ToJsonString()));
        foreach (string value in new[] { Secret, operatorSecret, fromServer })
        {
            Assert.DoesNotContain(value, stream);
            Assert.DoesNotContain(value, await server.Http.GetStringAsync($"/v1/tasks/{r.Id}/transcript"));
            Assert.DoesNotContain(value, await server.Http.GetStringAsync($"/v1/tasks/{r.Id}/output?stream=stdout"));
            Assert.DoesNotContain(value, await server.Http.GetStringAsync($"/v1/tasks/{r.Id}/output?stream=stderr"));
            Assert.DoesNotContain(value, (await server.Http.GetTaskAsync(r.Id!)).Body!.ToJsonString());
        }

        Assert.Contains("stderr: [secret:MY_SECRET]", await server.Http.GetStringAsync($"/v1/tasks/{r.Id}/output?stream=stderr"));
        Assert.Empty(FilesContaining(server.DataDirectory, Secret));
        Assert.Empty(FilesContaining(server.DataDirectory, operatorSecret));
        Assert.Empty(FilesContaining(server.DataDirectory, fromServer));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_running_tasks_process_list_masks_a_secret_in_a_command_line()
    {
        await using var server = await TestServer.StartAsync();
        var r = await server.Http.CreateAsync(new
        {
            agent = "command",
            command = new[] { "bash", "-c", "(exec -a \"holder-$MY_SECRET\" sleep 60) & wait" },
            secrets = new Dictionary<string, string> { ["MY_SECRET"] = Secret },
        });
        string listing = "";
        await Proc.WaitForAsync(async () =>
        {
            listing = (await server.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{r.Id}/processes")).Body!.ToJsonString();
            // The exec'd sleep, masked or not (its shell's own command line holds the script, "holder-$MY_SECRET").
            return listing.Contains(Secret) || listing.Contains("holder-[secret:MY_SECRET] 60");
        }, TimeSpan.FromSeconds(30), "the task's sleep in its process list");

        Assert.DoesNotContain(Secret, listing);
        Assert.Contains("holder-[secret:MY_SECRET] 60", listing);
        await server.Http.CancelAsync(r.Id!);
        await server.Http.WaitForEndAsync(r.Id!);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_claude_task_that_echoes_its_secret_shows_only_the_placeholder()
    {
        await using var server = await TestServer.StartAsync();
        var r = await server.Http.CreateAsync(new
        {
            agent = "claude-code",
            prompt = "secret",
            secrets = new Dictionary<string, string> { ["MY_SECRET"] = Secret },
        }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        Assert.Equal("result has [secret:MY_SECRET]", r.Body!["result"]!["text"]!.GetValue<string>());
        var events = await server.Http.ReadEventsAsync(r.Id!);
        Assert.Contains(events, e => e.Name == "agent.text" && e.Data!["text"]!.GetValue<string>() == "the key is [secret:MY_SECRET]");
        Assert.DoesNotContain(Secret, string.Join("\n", events.Select(e => e.Data?.ToJsonString())));
        Assert.Empty(FilesContaining(server.DataDirectory, Secret));
    }

    [Fact(Timeout = 60_000)]
    public async Task An_idempotency_key_that_holds_a_secrets_value_is_refused_with_the_field_named_not_stored_masked()
    {
        await using var server = await TestServer.StartAsync();
        for (int attempt = 0; attempt < 2; attempt++)
        {
            var r = await server.Http.CreateAsync(new
            {
                agent = "command",
                command = new[] { "true" },
                secrets = new Dictionary<string, string> { ["TOKEN"] = Secret },
                idempotencyKey = "job-" + Secret,
            });
            Assert.Equal(HttpStatusCode.BadRequest, r.Status);
            Assert.Equal("idempotencyKey", r.Body!["errors"]![0]!["field"]!.GetValue<string>());
        }

        Assert.Empty(FilesContaining(server.DataDirectory, Secret));
    }
}
