using System.Text.Json;
using Corral.Testing.Support.Guest;

namespace Corral.Cli.Tests.Support;

/// <summary>
/// One guest boot (QEMU, pure cgroup v2) in which the built corral runs every limits case, one after another, while
/// a neighbour tree runs throughout. Each case runs in a cgroup of its own that the guest's "host" delegates the
/// controllers to, as systemd does for a <c>Delegate=yes</c> service, so corral must make room for its leaves itself
/// (the no-internal-processes rule); the neighbour runs in the root cgroup. .NET is about ten times slower there, so
/// the cases share the boot and their bounds are loose.
/// </summary>
public sealed class LimitsGuest : IAsyncLifetime
{
    /// <summary>The neighbour's uid in the guest: no passwd entry there either.</summary>
    public const int NeighbourUid = 4242;

    private GuestResult? _result;

    /// <summary>Why the guest could not run here, or <c>null</c>.</summary>
    public string? Unavailable { get; private set; }

    public GuestResult Result => _result ?? throw new InvalidOperationException("the guest did not run");

    public async ValueTask InitializeAsync()
    {
        var ct = TestContext.Current.CancellationToken;
        try
        {
            using var _ = await GuestCache.LockAsync(TimeSpan.FromMinutes(10), ct);
            var image = await GuestImage.PrepareAsync(GuestCache.Directory, ct);
            var shares = new List<string> { AppContext.BaseDirectory.TrimEnd('/') };
            string dotnetRoot = Path.GetDirectoryName(CorralCli.DotnetHost)!;
            if (!dotnetRoot.StartsWith("/usr/", StringComparison.Ordinal))
                shares.Add(dotnetRoot);
            // Emulated (TCG) on 2 shared cores a boot takes 35-85 s; two CI runs' guests never finished (one went silent
            // after its first case), which is what the deadline, the per-case bounds and the stall watch below are for.
            var job = new GuestJob(Script) { Shares = shares, Timeout = TimeSpan.FromMinutes(double.TryParse(Environment.GetEnvironmentVariable("CORRAL_GUEST_MINUTES"), out double m) ? m : 10) };
            _result = await GuestVm.RunAsync(image, job, ct);
            // A guest that stalled as a whole (its own snapshot loop stuck too) says nothing about corral: one CI run's
            // guest went silent after its first case for 10 minutes. Boot once more, and report the stall if it recurs.
            if (_result.Stalled)
            {
                TestContext.Current.SendDiagnosticMessage("The limits guest stalled; booting it again. " + _result.Describe());
                _result.Dispose();
                _result = await GuestVm.RunAsync(image, job, ct);
            }
        }
        catch (GuestUnavailableException e)
        {
            Unavailable = e.Message;
        }
    }

    /// <summary>Skips (or, with <c>CORRAL_REQUIRE_GUEST=1</c>, fails) where no guest could run; fails if the script did not finish.</summary>
    public GuestResult Require()
    {
        if (Unavailable is { } why)
        {
            Assert.False(GuestCache.Required, $"{GuestCache.RequiredVariable}=1 but no guest can run here: {why}");
            Assert.Skip("No QEMU guest here: " + why);
        }

        Assert.True(Result.ExitCode == 0, Result.Describe());
        return Result;
    }

    /// <summary>A report corral wrote in the guest.</summary>
    public JsonElement Report(string name)
    {
        string? text = Require().Read(name + ".json");
        Assert.True(text is not null, $"no {name}.json: " + Result.Describe());
        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }

    /// <summary>corral's exit status in a case.</summary>
    public int ExitCode(string name) => int.Parse(Require().Read(name + ".exit")!.Trim(), System.Globalization.CultureInfo.InvariantCulture);

    public ValueTask DisposeAsync()
    {
        _result?.Dispose();
        return ValueTask.CompletedTask;
    }

    private static string Script => $$"""
        set -u
        C="{{CorralCli.DotnetHost}} {{CorralCli.Dll}}"
        J=/job
        export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

        # The guest's "host" delegates the controllers below the root, as systemd does for Delegate=yes.
        echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control

        # service NAME CMD...: runs CMD as the only process of the cgroup NAME, like a delegated service's main process.
        # timeout stays outside that cgroup; past 4 minutes the case ends with status 124 and the next one runs.
        service() { mkdir -p /sys/fs/cgroup/$1; g=/sys/fs/cgroup/$1; shift; timeout -k 10 240 sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$g" "$@"; }

        # The neighbour: its own uid and limits, in the root cgroup, ticking until every case is done.
        $C run --user {{NeighbourUid}} --memory-max 256M --pids-max 64 --report $J/neighbour.json -- /bin/sh -c \
          'i=0; while [ ! -e /tmp/cases-done ]; do i=$((i+1)); echo "tick $i"; sleep 0.2; done; echo "ticks $i"' > $J/neighbour.out 2> $J/neighbour.err &
        n=$!
        i=0; until grep -q "^tick 1$" $J/neighbour.out 2>/dev/null || [ $i -ge 1200 ]; do i=$((i+1)); sleep 0.1; done
        # Which processes the neighbour's leaf holds after each case (its leaf is the only one under /corral).
        snapshot() { cat /sys/fs/cgroup/corral/*/cgroup.procs > $J/neighbour.$1 2>&1; }
        snapshot before

        # 1. 200 MB under a 64 MiB limit: the OOM killer acts inside the tree.
        service case-memory $C run --memory-max 64M --timeout 120s --report $J/memory.json -- dd if=/dev/zero of=/dev/null bs=200M count=1 > $J/memory.out 2>&1
        echo $? > $J/memory.exit
        ls /sys/fs/cgroup/case-memory > $J/memory.cgroups
        snapshot memory

        # 2. A fork bomb under pids.max 20, torn down by the timeout.
        service case-pids $C run --pids-max 20 --timeout 5s --grace 1s --report $J/pids.json -- /bin/bash -c 'bomb() { bomb & bomb & wait; }; bomb' > $J/pids.out 2>&1
        echo $? > $J/pids.exit
        find /sys/fs/cgroup/case-pids/corral -mindepth 1 -type d > $J/pids.leaves
        snapshot pids

        # 3. A busy loop under a fifth of a core, for 4 s.
        service case-cpu $C run --cpu-max 0.2 --timeout 4s --report $J/cpu.json -- /bin/sh -c 'while :; do :; done' > $J/cpu.out 2>&1
        echo $? > $J/cpu.exit
        snapshot cpu

        touch /tmp/cases-done
        wait $n
        echo $? > $J/neighbour.exit
        """;
}
