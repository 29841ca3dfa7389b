namespace Corral.Deploy.Tests;

/// <summary>The systemd unit delegates the cgroup subtree to Corral and stops it so that no tree is orphaned.</summary>
public sealed class SystemdTests
{
    [Fact(Timeout = 60_000)]
    public async Task The_unit_delegates_cgroups_lets_corral_stop_its_tasks_and_is_valid_for_systemd()
    {
        string unit = await File.ReadAllTextAsync(Repository.Deploy("systemd", "corral.service"), TestContext.Current.CancellationToken);
        var settings = unit.Split('\n').Select(l => l.Trim()).Where(l => l.Contains('=') && !l.StartsWith('#'))
            .Select(l => l.Split('=', 2)).GroupBy(kv => kv[0]).ToDictionary(g => g.Key, g => g.Last()[1]);
        Assert.Equal("yes", settings["Delegate"]);
        Assert.Equal("mixed", settings["KillMode"]); // SIGTERM to Corral alone; SIGKILL for whatever is left, before any restart
        Assert.Equal("on-failure", settings["Restart"]);
        Assert.True(double.Parse(settings["TimeoutStopSec"]) > 2 * Repository.LadderSeconds);
        Assert.Contains("--token-file", settings["ExecStart"]);

        // systemd's own parser: any unknown key or bad value is reported (the binary is swapped for one that exists).
        Assert.True(Repository.OnPath("systemd-analyze"), "systemd-analyze is part of systemd, on every Debian machine");
        string copy = Path.Combine(Directory.CreateTempSubdirectory("corral-unit-").FullName, "corral.service");
        await File.WriteAllTextAsync(copy, unit.Replace("/usr/local/bin/corral", "/bin/true"), TestContext.Current.CancellationToken);
        var (code, stdout, stderr) = await Repository.RunAsync("systemd-analyze", ["verify", copy], TimeSpan.FromSeconds(30));
        Assert.True(code == 0 && stderr.Trim().Length == 0, stdout + stderr);
        Directory.Delete(Path.GetDirectoryName(copy)!, recursive: true);
    }
}
