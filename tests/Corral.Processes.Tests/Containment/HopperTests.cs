using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>
/// A process that never keeps a PID: it forks its successor and exits, over and over, so a scan in PID order can
/// pass its successor by (forked behind the scan's position) and then find its PID gone. Teardown must still leave
/// nothing of it.
/// </summary>
public class HopperTests
{
    // Each generation writes its PID to $D/beat and forks the next: a beat that still changes is a survivor (a scan
    // of /proc for it could itself miss a process that moves).
    private const string Hop = "import os\np = os.environ['D'] + '/beat'\nwhile True:\n    open(p, 'w').write(str(os.getpid()))\n    if os.fork(): os._exit(0)\n";

    [Theory(Timeout = 300_000)]
    [MemberData(nameof(Modes.Both), MemberType = typeof(Modes))]
    public async Task A_process_that_keeps_forking_its_successor_and_exiting_leaves_no_survivor(ContainmentMode mode)
    {
        Modes.SkipIfUnavailable(mode);
        for (int run = 0; run < 20; run++)
        {
            using var dir = new PidDir();
            string beat = dir.File("beat");
            string script = $"setsid /usr/bin/python3 -c \"{Hop}\" & while [ ! -s $D/beat ]; do sleep 0.01; done; sleep 0.1; echo done";
            var spec = Modes.Bash(script, mode) with
            {
                Environment = new Dictionary<string, string?> { ["D"] = dir.Path },
                Teardown = new TeardownOptions { Grace = TimeSpan.FromMilliseconds(100) },
            };

            var result = await ProcessTree.RunAsync(spec, TestContext.Current.CancellationToken);

            Assert.Equal("done\n", result.StandardOutput);
            bool survived = await Proc.EventuallyAsync(() => Beats(beat), TimeSpan.FromMilliseconds(300));
            while (Beats(beat))
            {
                foreach (int pid in Proc.WithEnvironment("D=" + dir.Path))
                    Proc.KillIfAlive(pid, "D=" + dir.Path);
            }

            Assert.False(survived, $"run {run}: the hopper survived the teardown");
        }
    }

    /// <summary>Whether the beat file changes within 50 ms: a generation of the hopper is alive.</summary>
    private static bool Beats(string beat)
    {
        string before = File.ReadAllText(beat);
        Thread.Sleep(50);
        return File.ReadAllText(beat) != before;
    }
}
