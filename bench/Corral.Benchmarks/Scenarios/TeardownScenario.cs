using System.Diagnostics;
using System.Globalization;
using System.Text;
using CliWrap;
using Corral.Benchmarks.Harness;
using Corral.Processes;
using Corral.Processes.Internal.Containment;
using MedallionCommand = Medallion.Shell.Command;

namespace Corral.Benchmarks.Scenarios;

/// <summary>
/// 4. A tree of N sleeps, half of them setsid escapees (still children of the root, but in their own sessions).
/// Time from the teardown request to every process of the tree gone, against the kernel alone.
/// </summary>
internal sealed class TeardownScenario : IScenario
{
    public string Key => "teardown";
    public string Title => "4. Teardown";
    public string? Unavailable => null;

    private readonly record struct Member(int Pid, int Pidfd, int Session);

    /// <summary>One tree under one contender: started, then asked to tear down.</summary>
    private abstract class Tree
    {
        public abstract Task StartAsync(string script, string tag);

        /// <summary>The teardown request; returns when the contender's call returns.</summary>
        public abstract Task RequestAsync(IReadOnlyList<Member> members);

        public virtual Task CleanupAsync() => Task.CompletedTask;
    }

    private sealed class CorralTree(ContainmentMode mode) : Tree
    {
        private ProcessTree? _tree;
        public int Killed { get; private set; }

        public override Task StartAsync(string script, string tag)
        {
            _tree = ProcessTree.Start(new ProcessSpec("/bin/sh", "-c", script)
            {
                Containment = mode,
                StandardOutput = OutputTarget.Discard,
                StandardError = OutputTarget.Discard,
                Environment = new Dictionary<string, string?> { [Leftovers.TagVariable] = tag },
            });
            return Task.CompletedTask;
        }

        public override async Task RequestAsync(IReadOnlyList<Member> members)
        {
            _tree!.Cancel();
            var outcome = await _tree.Completion.ConfigureAwait(false);
            Killed = outcome.Killed.Count;
        }

        public override async Task CleanupAsync() => await _tree!.DisposeAsync();
    }

    private sealed class ProcessKillTree : Tree
    {
        private Process? _p;

        public override Task StartAsync(string script, string tag)
        {
            var psi = new ProcessStartInfo("/bin/sh", ["-c", script]) { UseShellExecute = false };
            psi.Environment[Leftovers.TagVariable] = tag;
            _p = Process.Start(psi);
            return Task.CompletedTask;
        }

        public override Task RequestAsync(IReadOnlyList<Member> members)
        {
            _p!.Kill(entireProcessTree: true);
            return Task.CompletedTask;
        }

        public override async Task CleanupAsync()
        {
            await _p!.WaitForExitAsync();
            _p.Dispose();
        }
    }

    private sealed class CliWrapTree : Tree
    {
        private readonly CancellationTokenSource _cts = new();
        private Task? _run;

        public override Task StartAsync(string script, string tag)
        {
            _run = Cli.Wrap("/bin/sh").WithArguments(["-c", script]).WithEnvironmentVariables(e => e.Set(Leftovers.TagVariable, tag))
                .WithValidation(CommandResultValidation.None).ExecuteAsync(_cts.Token);
            return Task.CompletedTask;
        }

        public override async Task RequestAsync(IReadOnlyList<Member> members)
        {
            _cts.Cancel();
            try { await _run!.ConfigureAwait(false); } catch (OperationCanceledException) { }
        }
    }

    private sealed class MedallionTree : Tree
    {
        private MedallionCommand? _cmd;

        public override Task StartAsync(string script, string tag)
        {
            _cmd = MedallionCommand.Run("/bin/sh", ["-c", script], o => o.EnvironmentVariable(Leftovers.TagVariable, tag).ThrowOnError(false));
            return Task.CompletedTask;
        }

        public override Task RequestAsync(IReadOnlyList<Member> members)
        {
            _cmd!.Kill();
            return Task.CompletedTask;
        }

        public override async Task CleanupAsync()
        {
            try { await _cmd!.Task; } catch (Exception) { }
        }
    }

    /// <summary>The kernel alone: the tree joined a cgroup before exec; teardown is one write of cgroup.kill.</summary>
    private sealed class KernelCgroupTree : Tree
    {
        private string? _dir;
        private int _root;

        public override Task StartAsync(string script, string tag)
        {
            _dir = Path.Combine(CgroupHost.Instance!.ParentPath, "bench-" + tag.Replace('.', '-'));
            Directory.CreateDirectory(_dir);
            int devNull = Native.OpenPath("/dev/null", Native.O_RDONLY);
            int devNullW = Native.OpenPath("/dev/null", Native.O_WRONLY);
            _root = RawProcess.Spawn("/bin/sh", ["/bin/sh", "-c", "echo 0 >\"$0\" || exit 125; exec /bin/sh -c \"$1\"", Path.Combine(_dir, "cgroup.procs"), script],
                RawProcess.Environment(tag), devNull, devNullW, devNullW);
            Native.close(devNull);
            Native.close(devNullW);
            return Task.CompletedTask;
        }

        public override Task RequestAsync(IReadOnlyList<Member> members)
        {
            if (!Native.WriteFile(Path.Combine(_dir!, "cgroup.kill"), "1"))
                throw new IOException("cgroup.kill failed");
            return Task.CompletedTask;
        }

        public override async Task CleanupAsync()
        {
            RawProcess.Reap(_root);
            for (int i = 0; i < 100; i++)
            {
                try
                {
                    Directory.Delete(_dir!);
                    return;
                }
                catch (IOException)
                {
                    await Task.Delay(20);
                }
            }
        }
    }

    /// <summary>The kernel alone with perfect knowledge: kill(-pgid) for the group, one pidfd signal per known escapee.</summary>
    private sealed class KernelGroupTree : Tree
    {
        private int _root;

        public override Task StartAsync(string script, string tag)
        {
            int devNull = Native.OpenPath("/dev/null", Native.O_RDONLY);
            int devNullW = Native.OpenPath("/dev/null", Native.O_WRONLY);
            _root = RawProcess.Spawn("/bin/sh", ["/bin/sh", "-c", script], RawProcess.Environment(tag), devNull, devNullW, devNullW, setsid: true);
            Native.close(devNull);
            Native.close(devNullW);
            return Task.CompletedTask;
        }

        public override Task RequestAsync(IReadOnlyList<Member> members)
        {
            Native.kill(-_root, Native.SIGKILL);
            foreach (var m in members)
            {
                if (m.Session != _root)
                    Native.pidfd_send_signal(m.Pidfd, Native.SIGKILL);
            }

            return Task.CompletedTask;
        }

        public override Task CleanupAsync()
        {
            RawProcess.Reap(_root);
            return Task.CompletedTask;
        }
    }

    public async Task RunAsync(RunContext context)
    {
        var o = context.Options;
        int half = o.Quick ? 100 : 500;
        int expected = 2 * half + 1;
        var cap = TimeSpan.FromSeconds(o.Quick ? 5 : 10);
        string script = $"i=0; while [ $i -lt {half} ]; do sleep 1000 & setsid sleep 1000 & i=$((i+1)); done; exec sleep 1000";
        var report = new ScenarioReport
        {
            Key = Key,
            Title = Title,
            Primary = Primary.Time,
            Description =
                $"`sh -c '…{half} × (sleep 1000 & setsid sleep 1000 &); exec sleep 1000'`: {expected:N0} processes, {half} of them in their own sessions. " +
                "Time from the teardown request (Corral `Cancel()` with the default ladder, SIGTERM first; `Process.Kill(entireProcessTree: true)`; " +
                "CliWrap forceful cancellation; MedallionShell `Kill()`) until the call has returned **and** every process of the tree has exited " +
                $"(watched through pidfds opened before the request), capped at {cap.TotalSeconds:0} s. Kernel baselines: one write to `cgroup.kill` " +
                "of a cgroup the tree joined before exec; `kill(-pgid)` plus one pidfd signal per escapee whose PID is already known. " +
                "Target: ≤ 1.3 × the kernel alone.",
        };
        context.Report.Scenarios.Add(report);

        var contenders = new List<(string Name, Role Role, Func<Tree> Make)>
        {
            ("Corral (cgroup)", Role.Corral, () => new CorralTree(ContainmentMode.Cgroup)),
            ("Corral (session)", Role.Corral, () => new CorralTree(ContainmentMode.Session)),
            ("Process.Kill(entireProcessTree)", Role.Peer, () => new ProcessKillTree()),
            ("CliWrap (forceful cancel)", Role.Peer, () => new CliWrapTree()),
            ("MedallionShell Kill()", Role.Peer, () => new MedallionTree()),
            ("kernel: cgroup.kill", Role.Baseline, () => new KernelCgroupTree()),
            ("kernel: kill(-pgid) + known escapees", Role.Baseline, () => new KernelGroupTree()),
        };

        contenders.RemoveAll(c => !o.Includes(c.Name));
        int rounds = o.N(10, 2);
        int peerRounds = Math.Min(rounds, o.N(3, 1));
        int stride = Math.Max(1, rounds / peerRounds);
        string caseName = $"{expected:N0} processes, {half} setsid";
        RunContext.Log($"teardown: {rounds} rounds of {expected} processes (peers {peerRounds} times)");
        for (int round = 0; round < rounds; round++)
        {
            bool peers = round % stride == 0 && round / stride < peerRounds;
            foreach (var (name, role, make) in Measure.Rotate(contenders, round))
            {
                if (role == Role.Peer && !peers)
                    continue;
                var s = report.Get(caseName, name, role);
                s.CapMs = cap.TotalMilliseconds;
                await MeasureOneAsync(make(), script, expected, cap, s);
            }

            RunContext.Log($"teardown: round {round + 1}/{rounds}");
        }

        var kernelCg = report.Series.FirstOrDefault(s => s.Contender == "kernel: cgroup.kill");
        var kernelPg = report.Series.FirstOrDefault(s => s.Contender.StartsWith("kernel: kill", StringComparison.Ordinal));
        foreach (var (corral, kernel) in new[] { ("Corral (cgroup)", kernelCg), ("Corral (session)", kernelPg) })
        {
            var s = report.Series.FirstOrDefault(x => x.Contender == corral);
            if (s is null || kernel is null)
                continue;
            double r = s.Median / kernel.Median;
            report.Findings.Add($"{corral}: median {Stats.Ms(s.Median)} = {r:0.00} × {kernel.Contender} ({Stats.Ms(kernel.Median)}) → target (≤ 1.3 × the kernel alone) **{(r <= 1.3 ? "met" : "missed")}**.");
        }

        if (!o.NoCharts)
        {
            report.Chart = "teardown.png";
            Charts.GroupedBars(Path.Combine(context.ResultsDirectory, report.Chart), $"Teardown of {expected:N0} processes: median time to all gone",
                "ms", report.Cases.ToList(), contenders.Select(c => c.Name).ToList(),
                (cs, cn) => report.Series.FirstOrDefault(s => s.Case == cs && s.Contender == cn)?.Median, logScale: true);
        }
    }

    private static async Task MeasureOneAsync(Tree tree, string script, int expected, TimeSpan cap, Series s)
    {
        string tag = Leftovers.NewTag();
        var members = new List<Member>();
        try
        {
            await tree.StartAsync(script, tag);
            var pids = await WaitReadyAsync(tag, expected, TimeSpan.FromSeconds(120));
            foreach (int pid in pids)
            {
                int fd = Native.pidfd_open(pid);
                if (fd >= 0)
                    members.Add(new Member(pid, fd, SessionOf(pid)));
            }

            var pidfds = members.Select(m => m.Pidfd).ToArray();
            var sw = Stopwatch.StartNew();
            var call = Task.Run(() => tree.RequestAsync(members));
            var gone = Task.Factory.StartNew(() => Leftovers.WaitGone(pidfds, cap), TaskCreationOptions.LongRunning);
            var both = Task.WhenAll(call, gone);
            await Task.WhenAny(both, Task.Delay(cap));
            double ms = sw.Elapsed.TotalMilliseconds;
            bool done = both.IsCompletedSuccessfully && gone.Result;
            int alive = done ? 0 : CountAlive(pidfds);
            s.Record(Math.Min(ms, cap.TotalMilliseconds), capped: !done);
            s.LeftBehind += alive;
            if (both.IsFaulted)
            {
                s.Failures++;
                s.Notes.Add(both.Exception!.GetBaseException().Message);
            }

            Leftovers.KillAll(tag);
            try { await call; } catch (Exception) { }
            await gone;
            if (tree is CorralTree c && c.Killed < expected - 1)
                s.Notes.Add($"outcome listed {c.Killed} killed processes");
        }
        finally
        {
            Leftovers.KillAll(tag);
            await tree.CleanupAsync();
            foreach (var m in members)
                Native.close(m.Pidfd);
        }
    }

    private static async Task<List<int>> WaitReadyAsync(string tag, int expected, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var pids = Leftovers.Find(tag);
            if (pids.Count >= expected && pids.All(p => Leftovers.Comm(p) == "sleep"))
                return pids;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"tree not ready: {pids.Count}/{expected} processes");
            await Task.Delay(50);
        }
    }

    private static int SessionOf(int pid)
    {
        byte[] buffer = new byte[512];
        int n = Native.ReadFile($"/proc/{pid}/stat", ref buffer);
        if (n <= 0)
            return 0;
        var text = Encoding.ASCII.GetString(buffer, 0, n);
        var rest = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(rest[3], CultureInfo.InvariantCulture);
    }

    private static unsafe int CountAlive(int[] pidfds)
    {
        int alive = 0;
        foreach (int fd in pidfds)
        {
            var p = new Native.PollFd { Fd = fd, Events = Native.POLLIN };
            if (Native.poll(&p, 1, 0) == 0)
                alive++;
        }

        return alive;
    }
}
