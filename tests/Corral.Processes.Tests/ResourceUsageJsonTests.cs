using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Corral.Processes.Tests;

/// <summary>The receipt is part of the one JSON shape of a run (the CLI report, the server's record), and reads back.</summary>
public sealed class ResourceUsageJsonTests
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase, allowIntegerValues: false) },
    };

    private static readonly ProcessOutcome Outcome = new()
    {
        Pid = 42,
        TreeId = "0123456789abcdef0123456789abcdef",
        Reason = ExitReason.Signaled,
        Signal = 9,
        StartedAt = DateTimeOffset.UnixEpoch,
        ExitedAt = DateTimeOffset.UnixEpoch.AddSeconds(2),
        CompletedAt = DateTimeOffset.UnixEpoch.AddSeconds(2.5),
        Containment = ContainmentKind.Cgroup,
        Killed = [new KilledProcess(43, "sleep 300", FoundBy.Uid)],
        Resources = new ResourceUsage
        {
            MemoryPeakBytes = 64L << 20,
            CpuUser = TimeSpan.FromMicroseconds(52_110),
            CpuSystem = TimeSpan.FromMicroseconds(1_482_777),
            PidsPeak = 1,
            OomKills = 1,
            LimitHit = ResourceLimitKind.Memory,
            Enforced = new EnforcedLimits(Memory: true, Pids: false, Cpu: false),
        },
    };

    [Fact]
    public void The_receipt_is_written_in_the_documented_shape()
    {
        var json = JsonNode.Parse(JsonSerializer.Serialize(Outcome, Options))!;

        Assert.Equal("""{"memoryPeakBytes":67108864,"cpuUserMs":52.11,"cpuSystemMs":1482.777,"pidsPeak":1,"oomKills":1,"limitHit":"memory","enforced":{"memory":true,"pids":false,"cpu":false}}""",
            json["resources"]!.ToJsonString());
        Assert.Equal("uid", json["killed"]![0]!["foundBy"]!.GetValue<string>());
    }

    [Fact]
    public void Unknown_values_are_null_and_everything_reads_back()
    {
        var unknown = Outcome with { Resources = ResourceUsage.Unknown };
        string text = JsonSerializer.Serialize(unknown, Options);

        Assert.Contains("""
            "resources":{"memoryPeakBytes":null,"cpuUserMs":null,"cpuSystemMs":null,"pidsPeak":null,"oomKills":null,"limitHit":null,"enforced":{"memory":false,"pids":false,"cpu":false}}
            """, text);
        Assert.Equal(ResourceUsage.Unknown, JsonSerializer.Deserialize<ProcessOutcome>(text, Options)!.Resources);
        var back = JsonSerializer.Deserialize<ProcessOutcome>(JsonSerializer.Serialize(Outcome, Options), Options)!;
        Assert.Equal(Outcome.Resources, back.Resources);
        Assert.Equal(Outcome.Killed, back.Killed);
    }

    [Fact]
    public void A_ledger_entry_is_written_with_its_command_and_cpu_in_milliseconds()
    {
        var entry = new LiveProcess(7, 1, "sleep 300", ProcessState.Sleeping, 4096, TimeSpan.FromMilliseconds(12.5), FoundBy.Cgroup);

        Assert.Equal("""{"pid":7,"parentPid":1,"command":"sleep 300","state":"sleeping","rssBytes":4096,"cpuMs":12.5,"foundBy":"cgroup"}""",
            JsonSerializer.Serialize(entry, Options));
    }
}
