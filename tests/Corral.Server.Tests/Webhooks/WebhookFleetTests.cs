using System.Net;
using Corral.Client.Webhooks;
using Corral.Server.Tests.Fleet;
using Corral.Server.Tests.Support;
using Corral.Testing.Support.Postgres;

namespace Corral.Server.Tests.Webhooks;

/// <summary>Webhooks in a fleet of two real nodes on one real PostgreSQL: every node sends, no delivery is sent twice.</summary>
public sealed class WebhookFleetTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>, IAsyncLifetime
{
    private readonly string _secret = WebhookReceiver.NewSecret();
    private readonly List<ServerProcess> _nodes = [];
    private readonly List<string> _directories = [];
    private WebhookReceiver _receiver = null!;

    public async ValueTask InitializeAsync() => _receiver = await WebhookReceiver.StartAsync();

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
            node.Kill();
        await _receiver.DisposeAsync();
        foreach (string d in _directories)
            Directory.Delete(d, true);
    }

    [Fact(Timeout = 180_000)]
    public async Task Two_nodes_deliver_each_task_webhook_and_each_default_exactly_once()
    {
        if (PostgresCluster.Unavailable is { } why)
            Assert.Skip(why);
        string db = await postgres.Cluster.CreateDatabaseAsync();
        string defaultUrl = _receiver.Url + "default";
        var nodes = new[] { await NodeAsync(db, "a", defaultUrl), await NodeAsync(db, "b", defaultUrl) };
        var ids = new List<string>();
        for (int i = 0; i < 8; i++)
        {
            var created = await nodes[i % 2].Http.CreateAsync(new { agent = "command", command = new[] { "sh", "-c", "sleep 0.2" }, webhook = new { url = _receiver.Url + "own" } });
            Assert.Equal(HttpStatusCode.Accepted, created.Status);
            ids.Add(created.Id!);
        }

        var received = await _receiver.WaitForAsync(r => r.Count >= ids.Count * 2, TimeSpan.FromSeconds(90), "an own and a default webhook per task");
        // Give a duplicate the time to show up: a lease of a claim (2 × timeout + 5 s) and a sweep.
        await Task.Delay(TimeSpan.FromSeconds(3));
        received = _receiver.Received;
        Assert.Equal(ids.Count * 2, received.Count);
        Assert.Equal(received.Count, received.Select(r => r.Id).Distinct().Count());
        var verifier = new WebhookVerifier(_secret);
        Assert.All(received, r => verifier.Verify(r.Body, r.Id, r.Timestamp, r.Signature));
        foreach (string id in ids)
        {
            Assert.Equal(2, received.Count(r => r.Json["data"]!["id"]!.GetValue<string>() == id));
            var list = (await nodes[1].Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{id}/webhooks")).Body!["items"]!.AsArray();
            Assert.Equal(2, list.Count);
        }
    }

    private async Task<ServerProcess> NodeAsync(string database, string name, string defaultUrl)
    {
        string data = Directory.CreateTempSubdirectory($"corral-webhook-fleet-{name}-").FullName;
        _directories.Add(data);
        var node = await ServerProcess.StartAsync(data, s =>
        {
            s["Corral:Fleet:LeaseSeconds"] = "3";
            s["Corral:Limits:MaxMemoryPressure"] = "100";
            s["Corral:Webhooks:Secret"] = _secret;
            s["Corral:Webhooks:AllowedUrlPrefixes:0"] = _receiver.Url.ToString();
            s["Corral:Webhooks:Defaults:0:Url"] = defaultUrl;
            s["Corral:Webhooks:FirstRetrySeconds"] = "0.2";
            s["Corral:Webhooks:TimeoutSeconds"] = "2";
        }, arguments: ["--postgres", database, "--node-id", name]);
        _nodes.Add(node);
        return node;
    }
}
