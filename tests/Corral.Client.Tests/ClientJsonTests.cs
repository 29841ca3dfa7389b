using System.Text.Json;
using Corral.Client.Internal;
using Microsoft.Extensions.DependencyInjection;

namespace Corral.Client.Tests;

/// <summary>What the client reads of records it did not see before, and how it is set up.</summary>
public sealed class ClientJsonTests
{
    [Fact]
    public void A_record_from_a_newer_server_reads_with_its_unknown_fields_kept()
    {
        var json = JsonSerializer.Deserialize<JsonElement>("""
            {"id":"tsk_1","status":"paused","agent":"command","createdAt":"2026-12-01T10:00:00+00:00",
             "webhooks":[{"url":"http://x"}],"process":{"pid":7,"reason":"teleported","killed":[{"pid":8,"command":"sleep 1","foundBy":"psychic"}]}}
            """);
        var task = ClientJson.ReadTask(json);
        Assert.Equal(CorralTaskStatus.Unknown, task.Status);
        Assert.False(task.IsTerminal); // no endedAt: not known to be over
        Assert.Equal("teleported", task.Process?.Reason);
        Assert.Equal(new KilledProcess(8, "sleep 1", "psychic"), Assert.Single(task.Process!.Killed));
        Assert.Equal("http://x", task.Raw.GetProperty("webhooks")[0].GetProperty("url").GetString());
    }

    [Fact]
    public void A_create_request_sends_only_what_is_set_in_the_servers_names()
    {
        var request = CreateTaskRequest.ForCommand("bash", "-c", "true") with { Limits = new TaskLimits { TimeoutSeconds = 5 } };
        Assert.Equal("""{"agent":"command","command":["bash","-c","true"],"limits":{"timeoutSeconds":5}}""",
            JsonSerializer.Serialize(request, ClientJson.Options));
    }

    [Fact]
    public void The_breaker_wait_doubles_per_failed_probe_up_to_its_cap()
    {
        var options = new CorralClientOptions { CircuitBreakDuration = TimeSpan.FromSeconds(5), MaxCircuitBreakDuration = TimeSpan.FromSeconds(30) };
        Assert.Equal([5, 10, 20, 30, 30], Enumerable.Range(0, 5).Select(n => CorralResilience.BreakDuration(options, n).TotalSeconds));
    }

    [Fact]
    public void Options_without_an_address_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new CorralClient(new CorralClientOptions()));
        var services = new ServiceCollection();
        services.AddCorralClient(o => o.Token = "t");
        using var provider = services.BuildServiceProvider();
        Assert.ThrowsAny<Exception>(() => provider.GetRequiredService<CorralClient>());
    }
}
