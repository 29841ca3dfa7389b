using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Corral.Client.Webhooks;
using Corral.Server.Hosting;
using Corral.Server.Tests.Support;
using Corral.Testing.Support;

namespace Corral.Server.Tests.Webhooks;

/// <summary>Signed webhooks to a real loopback receiver: what arrives, how it is retried, that it survives a crash, and who may name one.</summary>
public sealed class WebhookTests : IAsyncLifetime
{
    private readonly string _secret = WebhookReceiver.NewSecret();
    private WebhookReceiver _receiver = null!;

    public async ValueTask InitializeAsync() => _receiver = await WebhookReceiver.StartAsync();

    public async ValueTask DisposeAsync() => await _receiver.DisposeAsync();

    [Fact(Timeout = 60_000)]
    public async Task A_task_end_webhook_arrives_signed_with_the_final_record_and_shows_as_delivered_after_one_attempt()
    {
        await using var server = await StartAsync();
        string url = _receiver.Url + "hooks/end";
        var created = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, created.Status);
        string id = created.Id!;
        Assert.Equal(url, created.Body!["webhook"]!["url"]!.GetValue<string>());
        Assert.Equal(["end"], created.Body!["webhook"]!["events"]!.AsArray().Select(e => e!.GetValue<string>()));

        var received = (await _receiver.WaitForAsync(r => r.Count >= 1, TimeSpan.FromSeconds(20), "the end webhook")).Single();
        new WebhookVerifier(_secret).Verify(received.Body, received.Id, received.Timestamp, received.Signature);
        Assert.StartsWith("msg_", received.Id);
        Assert.Equal("application/json", received.ContentType);
        Assert.StartsWith("Corral", received.UserAgent);
        Assert.Equal("task.ended", received.Type);
        var data = received.Json["data"]!;
        Assert.Equal(id, data["id"]!.GetValue<string>());
        Assert.Equal("succeeded", data["status"]!.GetValue<string>());
        Assert.True(DateTimeOffset.TryParse(received.Json["timestamp"]!.GetValue<string>(), out _));
        var record = (await server.Http.GetTaskAsync(id)).Body!;
        Assert.Equal(record["endedAt"]!.GetValue<string>(), data["endedAt"]!.GetValue<string>());

        var delivery = await DeliveryAsync(server.Http, id, d => d["state"]!.GetValue<string>() == "delivered");
        Assert.Equal(received.Id, delivery["id"]!.GetValue<string>());
        Assert.Equal(url, delivery["url"]!.GetValue<string>());
        Assert.Equal("task.ended", delivery["event"]!.GetValue<string>());
        Assert.Equal(1, delivery["attempts"]!.GetValue<int>());
        Assert.Equal(204, delivery["lastStatus"]!.GetValue<int>());
        Assert.NotNull(delivery["deliveredAt"]);
        Assert.Null(delivery["payload"]);

        // The secret is in no answer and no record.
        string everything = (await server.Http.GetStringAsync($"/v1/tasks/{id}")) + await server.Http.GetStringAsync($"/v1/tasks/{id}/webhooks")
            + await server.Http.GetStringAsync("/v1/tasks") + Encoding.UTF8.GetString(received.Body);
        Assert.DoesNotContain(_secret[6..], everything);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_client_library_names_a_webhook_and_reads_its_deliveries()
    {
        await using var server = await StartAsync();
        using var client = new Corral.Client.CorralClient(new Corral.Client.CorralClientOptions { BaseAddress = server.BaseAddress });
        var task = await client.CreateTaskAsync(Corral.Client.CreateTaskRequest.ForCommand("true") with
        {
            Webhook = new Corral.Client.TaskWebhook { Url = _receiver.Url + "client", Events = [Corral.Client.TaskWebhook.StatusEvent, Corral.Client.TaskWebhook.EndEvent] },
        });
        Assert.Equal(["status", "end"], task.Webhook!.Events!);
        await _receiver.WaitForAsync(r => r.Count >= 2, TimeSpan.FromSeconds(30), "the status and end webhooks");
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        IReadOnlyList<Corral.Client.WebhookDelivery> deliveries;
        while (!((deliveries = await client.GetWebhooksAsync(task.Id)).Count == 2 && deliveries.All(d => d.IsDelivered)))
        {
            Assert.True(DateTime.UtcNow < until, "the deliveries did not all show as delivered");
            await Task.Delay(50);
        }

        Assert.Equal(["task.ended", "task.status"], deliveries.Select(d => d.Event).Order());
        Assert.All(deliveries, d => Assert.Equal(1, d.Attempts));
        await Assert.ThrowsAsync<Corral.Client.CorralNotFoundException>(() => client.GetWebhooksAsync("tsk_missing"));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_receiver_answering_500_twice_gets_the_delivery_on_the_third_attempt_with_the_same_webhook_id()
    {
        await using var server = await StartAsync();
        _receiver.FailFirst = 2;
        var created = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString() } }, wait: 30);
        string id = created.Id!;

        var received = await _receiver.WaitForAsync(r => r.Count >= 3, TimeSpan.FromSeconds(30), "three attempts");
        Assert.Equal([500, 500, 204], received.Select(r => r.Answer));
        Assert.Single(received.Select(r => r.Id).Distinct());
        var verifier = new WebhookVerifier(_secret);
        Assert.All(received, r => verifier.Verify(r.Body, r.Id, r.Timestamp, r.Signature));

        var delivery = await DeliveryAsync(server.Http, id, d => d["state"]!.GetValue<string>() == "delivered");
        Assert.Equal(3, delivery["attempts"]!.GetValue<int>());
        Assert.Equal(204, delivery["lastStatus"]!.GetValue<int>());
        Assert.Equal(3, _receiver.Received.Count);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_delivery_pending_when_the_server_is_killed_is_delivered_after_a_restart_on_the_same_data_directory()
    {
        string data = Directory.CreateTempSubdirectory("corral-webhook-restart-").FullName;
        ServerProcess? first = null, second = null;
        try
        {
            _receiver.FailFirst = int.MaxValue;
            first = await ServerProcess.StartAsync(data, Configure);
            var created = await first.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString() } }, wait: 30);
            Assert.Equal(HttpStatusCode.OK, created.Status);
            string id = created.Id!;
            // Pending with a refused attempt on record (an attempt killed before its outcome is written is not counted).
            await DeliveryAsync(first.Http, id, d => d["state"]!.GetValue<string>() == "pending" && d["attempts"]!.GetValue<int>() >= 1);
            first.Kill();
            int refused = _receiver.Received.Count;
            _receiver.FailFirst = 0;

            second = await ServerProcess.StartAsync(data, Configure);
            var received = await _receiver.WaitForAsync(r => r.Any(x => x.Answer == 204), TimeSpan.FromSeconds(60), "the delivery after the restart");
            Assert.True(received.Count > refused);
            Assert.Single(received.Select(r => r.Id).Distinct());
            var taken = received.Single(r => r.Answer == 204);
            new WebhookVerifier(_secret).Verify(taken.Body, taken.Id, taken.Timestamp, taken.Signature);
            Assert.Equal(id, taken.Json["data"]!["id"]!.GetValue<string>());
            var delivery = await DeliveryAsync(second.Http, id, d => d["state"]!.GetValue<string>() == "delivered");
            Assert.True(delivery["attempts"]!.GetValue<int>() >= 2);
        }
        finally
        {
            first?.Kill();
            second?.Kill();
            Directory.Delete(data, true);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task The_client_verifier_rejects_a_delivery_with_a_tampered_body_a_wrong_secret_or_a_stale_timestamp()
    {
        await using var server = await StartAsync();
        await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString() } }, wait: 30);
        var r = (await _receiver.WaitForAsync(x => x.Count >= 1, TimeSpan.FromSeconds(20), "the end webhook")).Single();
        var verifier = new WebhookVerifier(_secret);
        Assert.True(verifier.TryVerify(r.Body, r.Id, r.Timestamp, r.Signature, out _));

        byte[] tampered = [.. r.Body];
        tampered[^2] ^= 1;
        Assert.False(verifier.TryVerify(tampered, r.Id, r.Timestamp, r.Signature, out var bodyFailure));
        Assert.Equal(WebhookVerificationFailure.NoMatchingSignature, bodyFailure);
        Assert.False(verifier.TryVerify(r.Body, r.Id + "x", r.Timestamp, r.Signature, out _));
        Assert.False(new WebhookVerifier(WebhookReceiver.NewSecret()).TryVerify(r.Body, r.Id, r.Timestamp, r.Signature, out var secretFailure));
        Assert.Equal(WebhookVerificationFailure.NoMatchingSignature, secretFailure);
        var later = new ShiftedTime(TimeSpan.FromMinutes(10));
        Assert.False(new WebhookVerifier(_secret, timeProvider: later).TryVerify(r.Body, r.Id, r.Timestamp, r.Signature, out var staleFailure));
        Assert.Equal(WebhookVerificationFailure.TimestampTooOld, staleFailure);
        var ex = Assert.Throws<WebhookVerificationException>(() => verifier.Verify(tampered, r.Id, r.Timestamp, r.Signature));
        Assert.Equal(WebhookVerificationFailure.NoMatchingSignature, ex.Failure);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_webhook_outside_the_allowed_prefixes_is_refused_with_400_on_webhook_url_and_no_task_is_created()
    {
        await using var server = await StartAsync();
        var refused = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = "http://169.254.169.254/latest/meta-data" } });
        AssertInvalid(refused, "webhook.url", "allowed prefixes");
        // A prefix is matched exactly: another port of the same host is not under it.
        var otherPort = new UriBuilder(_receiver.Url) { Port = _receiver.Url.Port == 1 ? 2 : _receiver.Url.Port - 1 }.Uri.ToString();
        AssertInvalid(await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = otherPort } }), "webhook.url", "allowed prefixes");
        Assert.Empty((await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks")).Body!["items"]!.AsArray());
        Assert.Empty(_receiver.Received);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_non_http_url_user_info_an_unknown_event_or_an_unknown_field_of_a_webhook_is_refused_with_400()
    {
        await using var server = await StartAsync(s => s["Corral:Webhooks:AllowedUrlPrefixes:1"] = "file:");
        AssertInvalid(await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = "file:///etc/passwd" } }), "webhook.url", "http or https");
        string withUser = _receiver.Url.ToString().Replace("http://", "http://me:pw@", StringComparison.Ordinal);
        AssertInvalid(await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = withUser } }), "webhook.url", "user name");
        AssertInvalid(await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString(), events = new[] { "end", "progress" } } }),
            "webhook.events", "unknown event 'progress'");
        AssertInvalid(await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString(), secret = "mine" } }),
            "webhook.secret", "not a field");
        AssertInvalid(await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhok = new { url = _receiver.Url.ToString() } }), "webhok", "not a field");
        Assert.Empty((await server.Http.SendAsync(HttpMethod.Get, "/v1/tasks")).Body!["items"]!.AsArray());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_server_without_a_secret_refuses_task_webhooks_and_one_without_prefixes_allows_none()
    {
        await using (var plain = await TestServer.StartAsync())
        {
            var refused = await plain.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString() } });
            AssertInvalid(refused, "webhook", "not configured on this server");
            var ok = await plain.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
            Assert.Equal(HttpStatusCode.OK, ok.Status);
            Assert.Empty((await plain.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{ok.Id}/webhooks")).Body!["items"]!.AsArray());
        }

        await using var closed = await TestServer.StartAsync(s => s["Corral:Webhooks:Secret"] = _secret);
        AssertInvalid(await closed.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url.ToString() } }),
            "webhook.url", "allows no task webhooks");
        Assert.Equal(HttpStatusCode.NotFound, (await closed.Http.SendAsync(HttpMethod.Get, "/v1/tasks/tsk_missing/webhooks")).Status);
    }

    [Fact(Timeout = 30_000)]
    public async Task A_bad_secret_or_a_bad_default_url_stops_the_start_with_a_clear_message_that_does_not_repeat_the_secret()
    {
        string shortKey = "whsec_" + Convert.ToBase64String(new byte[8]);
        var e = Assert.Throws<ServerConfigurationException>(() => CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0" }, [$"--Corral:Webhooks:Secret={shortKey}"]));
        Assert.Contains("24 to 64 bytes", e.Message);
        Assert.DoesNotContain(shortKey, e.Message);
        e = Assert.Throws<ServerConfigurationException>(() => CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0" }, ["--Corral:Webhooks:Secret=not-a-secret"]));
        Assert.Contains("whsec_", e.Message);
        e = Assert.Throws<ServerConfigurationException>(() => CorralServer.Build(new ServerOptions { Urls = "http://127.0.0.1:0" },
            [$"--Corral:Webhooks:Secret={_secret}", "--Corral:Webhooks:Defaults:0:Url=ftp://example.com/"]));
        Assert.Contains("Corral:Webhooks:Defaults:0:Url", e.Message);
        await Task.CompletedTask;
    }

    [Fact(Timeout = 60_000)]
    public async Task Default_webhooks_receive_every_task_end_without_the_task_naming_one()
    {
        string url = _receiver.Url + "default";
        await using var server = await StartAsync(s => s["Corral:Webhooks:Defaults:0:Url"] = url);
        var ids = new List<string>();
        for (int i = 0; i < 3; i++)
            ids.Add((await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30)).Id!);

        var received = await _receiver.WaitForAsync(r => r.Count >= 3, TimeSpan.FromSeconds(30), "three default webhooks");
        Assert.Equal(ids.Order(), received.Select(r => r.Json["data"]!["id"]!.GetValue<string>()).Order());
        Assert.All(received, r => Assert.Equal("task.ended", r.Type));
        Assert.Null((await server.Http.GetTaskAsync(ids[0])).Body!["webhook"]);
        var delivery = await DeliveryAsync(server.Http, ids[0], d => d["state"]!.GetValue<string>() == "delivered");
        Assert.Equal(url, delivery["url"]!.GetValue<string>());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_webhook_asking_for_status_and_end_gets_a_task_status_delivery_then_task_ended()
    {
        await using var server = await StartAsync();
        var created = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sh", "-c", "sleep 0.5" }, webhook = new { url = _receiver.Url.ToString(), events = new[] { "status", "end" } } }, wait: 30);
        string id = created.Id!;
        var received = await _receiver.WaitForAsync(r => r.Count >= 2, TimeSpan.FromSeconds(30), "the status and end webhooks");
        Assert.Equal(["task.status", "task.ended"], received.Select(r => r.Type));
        Assert.Equal("running", received[0].Json["data"]!["status"]!.GetValue<string>());
        Assert.Equal("succeeded", received[1].Json["data"]!["status"]!.GetValue<string>());
        Assert.NotEqual(received[0].Id, received[1].Id);
        var verifier = new WebhookVerifier(_secret);
        Assert.All(received, r => verifier.Verify(r.Body, r.Id, r.Timestamp, r.Signature));

        var list = await DeliveriesAsync(server.Http, id, l => l.Count == 2 && l.All(d => d!["state"]!.GetValue<string>() == "delivered"));
        Assert.Equal(["task.status", "task.ended"], list.Select(d => d!["event"]!.GetValue<string>()).Order().Reverse());
    }

    private void Configure(Dictionary<string, string> s)
    {
        s["Corral:Webhooks:Secret"] = _secret;
        s["Corral:Webhooks:AllowedUrlPrefixes:0"] = _receiver.Url.ToString();
        s["Corral:Webhooks:FirstRetrySeconds"] = "0.2";
        s["Corral:Webhooks:MaxRetrySeconds"] = "0.5";
        s["Corral:Webhooks:TimeoutSeconds"] = "2";
        s["Corral:Webhooks:MaxAttempts"] = "1000";
    }

    [Fact(Timeout = 60_000)]
    public async Task A_task_whose_waiting_deliveries_were_never_written_still_gets_its_end_webhook_once()
    {
        await using var server = await StartAsync();
        string url = _receiver.Url + "hooks/lost";
        var created = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "1" }, webhook = new { url } });
        string id = created.Id!;
        await DeliveriesAsync(server.Http, id, l => l.Count == 1);
        // As if the server had died between the task's row and its deliveries' (the rows are written just after).
        using (var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(server.DataDirectory, "corral.db")};Pooling=False"))
        {
            db.Open();
            using var cmd = db.CreateCommand();
            cmd.CommandText = "DELETE FROM webhook_deliveries WHERE task_id = $id";
            cmd.Parameters.AddWithValue("$id", id);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        Assert.Equal("succeeded", (await server.Http.WaitForEndAsync(id))["status"]!.GetValue<string>());
        var received = (await _receiver.WaitForAsync(r => r.Count >= 1, TimeSpan.FromSeconds(20), "the end webhook")).Single();
        Assert.Equal(id, received.Json["data"]!["id"]!.GetValue<string>());
        var delivery = await DeliveryAsync(server.Http, id, d => d["state"]!.GetValue<string>() == "delivered");
        Assert.Equal(received.Id, delivery["id"]!.GetValue<string>());
    }

    [Fact(Timeout = 60_000)]
    public async Task A_waiting_delivery_whose_record_cannot_be_read_is_abandoned_and_holds_up_no_other_tasks_webhooks()
    {
        await using var server = await StartAsync();
        // A finished task whose stored record nests deeper than the server reads JSON (a damaged database may hold
        // one), with its delivery waiting for the end.
        string deep = string.Concat(Enumerable.Repeat("{\"a\":", 140)) + "{}" + new string('}', 140);
        using var db = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={Path.Combine(server.DataDirectory, "corral.db")};Pooling=False");
        db.Open();
        using (var insert = db.CreateCommand())
        {
            insert.CommandText = """
                INSERT INTO tasks (id, status, agent, created_at, request_json, record_json, ended_at)
                VALUES ('tsk_poisoned', 'succeeded', 'command', '2026-01-01T00:00:00Z', '{}', $record, '2026-01-01T00:00:01Z');
                INSERT INTO webhook_deliveries (id, task_id, url, event, state, created_at) VALUES ('msg_poisoned', 'tsk_poisoned', $url, 'task.ended', 'waiting', 0);
                """;
            insert.Parameters.AddWithValue("$record", $$"""{"id":"tsk_poisoned","status":"succeeded","agent":"command","createdAt":"2026-01-01T00:00:00Z","metadata":{{deep}}}""");
            insert.Parameters.AddWithValue("$url", _receiver.Url + "hooks/poisoned");
            insert.ExecuteNonQuery();
        }

        var created = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, webhook = new { url = _receiver.Url + "hooks/next" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, created.Status);
        await _receiver.WaitForAsync(r => r.Any(x => x.Json["data"]?["id"]?.GetValue<string>() == created.Id), TimeSpan.FromSeconds(20), "the next task's webhook");
        using var state = db.CreateCommand();
        state.CommandText = "SELECT state FROM webhook_deliveries WHERE id = 'msg_poisoned'";
        await Proc.WaitForAsync(() => (string?)state.ExecuteScalar() == "failed", TimeSpan.FromSeconds(20), "the poisoned delivery given up");
    }

    private Task<TestServer> StartAsync(Action<Dictionary<string, string>>? more = null) => TestServer.StartAsync(s =>
    {
        Configure(s);
        more?.Invoke(s);
    });

    private static void AssertInvalid(ApiResponse response, string field, string message)
    {
        Assert.Equal(HttpStatusCode.BadRequest, response.Status);
        Assert.Equal("invalid_request", response.ErrorCode);
        var error = Assert.Single(response.Body!["errors"]!.AsArray());
        Assert.Equal(field, error!["field"]!.GetValue<string>());
        Assert.Contains(message, error["message"]!.GetValue<string>());
    }

    private static async Task<JsonNode> DeliveryAsync(HttpClient http, string id, Func<JsonNode, bool> condition) =>
        (await DeliveriesAsync(http, id, l => l.Count == 1 && condition(l[0]!)))[0]!;

    /// <summary>Polls <c>GET /v1/tasks/{id}/webhooks</c> until <paramref name="condition"/> holds.</summary>
    private static async Task<JsonArray> DeliveriesAsync(HttpClient http, string id, Func<JsonArray, bool> condition)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            var r = await http.SendAsync(HttpMethod.Get, $"/v1/tasks/{id}/webhooks");
            Assert.Equal(HttpStatusCode.OK, r.Status);
            var items = r.Body!["items"]!.AsArray();
            if (condition(items))
                return items;
            if (DateTime.UtcNow > until)
                throw new TimeoutException($"Timed out waiting for the deliveries of {id}: {items.ToJsonString()}");
            await Task.Delay(50);
        }
    }

    /// <summary>The system clock moved by an offset (a receiver whose clock is ahead).</summary>
    private sealed class ShiftedTime(TimeSpan offset) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() + offset;
    }
}
