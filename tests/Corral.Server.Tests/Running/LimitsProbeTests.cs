using Corral.Processes;
using Corral.Server.Internal.Running;
using Corral.Server.Tests.Support;
using Corral.Testing.Support;

namespace Corral.Server.Tests.Running;

/// <summary>The start-up warning when this host cannot enforce tasks' resource limits.</summary>
public sealed class LimitsProbeTests
{
    [Fact]
    public void The_warning_names_each_limit_not_enforced()
    {
        Assert.Equal("memory, pids, cpu", LimitsProbe.Missing(EnforcedLimits.None));
        Assert.Equal("cpu", LimitsProbe.Missing(new EnforcedLimits(true, true, false)));
        Assert.Equal("", LimitsProbe.Missing(new EnforcedLimits(true, true, true)));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_server_says_at_start_which_limits_this_host_cannot_enforce_exactly_when_a_task_finds_them_not_enforced()
    {
        string data = Directory.CreateTempSubdirectory("corral-limits-probe-").FullName;
        var server = await ServerProcess.StartAsync(data);
        try
        {
            var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" }, limits = new { memoryMaxMb = 1024, pidsMax = 1000, cpuMax = 1 } }, wait: 60);
            var enforced = r.Body!["process"]!["resources"]!["enforced"]!;
            string missing = LimitsProbe.Missing(new EnforcedLimits(enforced["memory"]!.GetValue<bool>(), enforced["pids"]!.GetValue<bool>(), enforced["cpu"]!.GetValue<bool>()));
            if (missing.Length > 0)
                await Proc.WaitForAsync(() => server.Log.Contains($"This host cannot enforce tasks' {missing} limits", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "the warning");
            else
                Assert.DoesNotContain("cannot enforce tasks'", server.Log);
        }
        finally
        {
            server.Kill();
            Directory.Delete(data, true);
        }
    }
}
