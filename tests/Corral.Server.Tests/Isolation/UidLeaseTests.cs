using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Isolation;

/// <summary>
/// Servers on one host share the dynamic uid range safely: an exclusive uid's teardown kills every process of that
/// uid, so two servers (two data directories, or fleet nodes on one host) must never run tasks as the same uid, nor
/// may one take a uid whose processes a dead server left behind.
/// </summary>
public sealed class UidLeaseTests : IDisposable
{
    private readonly string _leases = Directory.CreateTempSubdirectory("corral-uid-leases-").FullName;
    private readonly int _start = Proc.UnusedUid() / 16 * 16;

    private static void RequireRoot()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Giving tasks uids of their own needs the server to run as root (CI runs as root).");
    }

    /// <summary>Dynamic isolation from a range of <paramref name="count"/> uids leased in this test's directory.</summary>
    private void Range(Dictionary<string, string> s, int count)
    {
        s.Remove("Corral:Isolation:User");
        s["Corral:Isolation:UidRangeStart"] = _start.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["Corral:Isolation:UidRangeCount"] = count.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["Corral:Isolation:UidLeaseDirectory"] = _leases;
    }

    private static async Task<int> UidOfRunningAsync(HttpClient http, string id)
    {
        var running = await http.WaitForAsync(id, t => t["status"]!.GetValue<string>() == "running");
        return running["uid"]!.GetValue<int>();
    }

    [Fact(Timeout = 120_000)]
    public async Task Two_servers_with_the_same_range_never_run_tasks_as_the_same_uid()
    {
        RequireRoot();
        await using var a = await TestServer.StartAsync(s => Range(s, 3));
        await using var b = await TestServer.StartAsync(s => Range(s, 3));
        var first = await a.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } });
        var second = await a.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } });
        var held = new[] { await UidOfRunningAsync(a.Http, first.Id!), await UidOfRunningAsync(a.Http, second.Id!) };

        // b's cursor starts anywhere in the range: whichever it tries, only the third uid is free.
        int third = Enumerable.Range(_start, 3).Single(u => !held.Contains(u));
        for (int i = 0; i < 3; i++)
        {
            var r = await b.Http.CreateAsync(new { agent = "command", command = new[] { "id", "-u" } }, wait: 30);
            Assert.Equal("succeeded", r.TaskStatus);
            Assert.Equal($"{third}\n", r.Body!["result"]!["text"]!.GetValue<string>());
        }

        await a.Http.CancelAsync(first.Id!);
        await a.Http.WaitForEndAsync(first.Id!);
        // Given back cleanly: b may take it once a has swept what it left in the shared directories.
        var taken = new HashSet<int>();
        await Proc.WaitForAsync(async () =>
        {
            taken.Add(int.Parse((await b.Http.CreateAsync(new { agent = "command", command = new[] { "id", "-u" } }, wait: 30)).Body!["result"]!["text"]!.GetValue<string>()));
            return taken.Contains(held[0]);
        }, TimeSpan.FromSeconds(30), "b to take the uid a gave back");
        Assert.DoesNotContain(held[1], taken);
        await a.Http.CancelAsync(second.Id!);
    }

    [Fact(Timeout = 180_000)]
    public async Task A_uid_whose_processes_a_killed_server_left_behind_is_not_taken_by_another_server()
    {
        RequireRoot();
        await using var survivor = await TestServer.StartAsync(s => Range(s, 2));
        string data = Directory.CreateTempSubdirectory("corral-uid-dead-").FullName;
        var doomed = await ServerProcess.StartAsync(data, s => Range(s, 2));
        Proc.Identity? leftover = null;
        int lost = 0;
        try
        {
            using var scratch = new Scratch("corral-uid-pid-");
            string pidFile = Path.Combine(scratch.Path, "pid");
            File.SetUnixFileMode(scratch.Path, (UnixFileMode)0x1FF); // the task's uid writes the pid
            var task = await doomed.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"setsid sleep 300 & echo $! > {pidFile}; sleep 300" } });
            lost = await UidOfRunningAsync(doomed.Http, task.Id!);
            leftover = Proc.Identify(await Proc.ReadPidFileAsync(pidFile, TimeSpan.FromSeconds(30)));
            doomed.Kill(); // SIGKILL: its lease lock is gone, its escapee still runs as the uid
            Assert.True(leftover is { } l && Proc.IsAlive(l.Pid));

            for (int i = 0; i < 4; i++)
            {
                var r = await survivor.Http.CreateAsync(new { agent = "command", command = new[] { "id", "-u" } }, wait: 30);
                Assert.Equal("succeeded", r.TaskStatus);
                Assert.NotEqual($"{lost}\n", r.Body!["result"]!["text"]!.GetValue<string>());
            }

            Assert.True(Proc.IsAlive(leftover!.Value.Pid), "another server's task must never reach the leftover");
        }
        finally
        {
            // What the killed server left: its task's whole tree, all of it running as the lost uid.
            foreach (string dir in Directory.EnumerateDirectories("/proc"))
            {
                if (lost > 0 && int.TryParse(Path.GetFileName(dir), out int pid) && Proc.Uids(pid) is [var real, ..] && real == lost)
                    Proc.KillIfAlive(Proc.Identify(pid));
            }

            Proc.KillIfAlive(leftover);
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_task_that_finds_every_uid_in_use_fails_with_a_clear_error_and_the_server_keeps_serving()
    {
        RequireRoot();
        await using var server = await TestServer.StartAsync(s => Range(s, 1));
        var holder = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } });
        await UidOfRunningAsync(server.Http, holder.Id!);

        var refused = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
        Assert.Equal("failed", refused.TaskStatus);
        Assert.Equal("spawn_failed", refused.Body!["error"]!["code"]!.GetValue<string>());
        Assert.Contains("uid", refused.Body!["error"]!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // The uid comes back when its task ends, and serves the next one.
        await server.Http.CancelAsync(holder.Id!);
        await server.Http.WaitForEndAsync(holder.Id!);
        await Proc.WaitForAsync(async () => (await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30)).TaskStatus == "succeeded",
            TimeSpan.FromSeconds(30), "a task to run once the uid is free again");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_uid_something_else_ran_as_at_start_is_not_handed_out_by_that_server_even_once_it_is_free()
    {
        RequireRoot();
        using var squatter = System.Diagnostics.Process.Start("setpriv", ["--reuid", _start.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--regid", _start.ToString(System.Globalization.CultureInfo.InvariantCulture), "--clear-groups", "sleep", "120"])!;
        try
        {
            await Proc.WaitForAsync(() => Proc.Uids(squatter.Id) is [var real, ..] && real == _start, TimeSpan.FromSeconds(10), "the squatter to run as the uid");
            await using var server = await TestServer.StartAsync(s => Range(s, 1));

            var refused = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
            Assert.Equal("spawn_failed", refused.Body!["error"]!["code"]!.GetValue<string>());
            Assert.True(Proc.IsAlive(squatter.Id), "the server must never touch a process it did not start");

            // Not this server's uid: it never sweeps that user's files nor runs tasks as it (a restart may, once it is free).
            squatter.Kill();
            await squatter.WaitForExitAsync();
            var still = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
            Assert.Equal("spawn_failed", still.Body!["error"]!["code"]!.GetValue<string>());
        }
        finally
        {
            if (!squatter.HasExited)
                squatter.Kill();
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_uid_whose_process_keeps_forking_a_successor_and_exiting_is_seen_at_start_and_not_handed_out()
    {
        RequireRoot();
        // No PID of the uid lives long: each process forks the next and exits, so a single pass of /proc in PID order
        // can miss it (a successor forked behind the pass), and the pass must be proven by reading the new PIDs again.
        using var scratch = new Scratch("corral-uid-hopper-");
        File.SetUnixFileMode(scratch.Path, (UnixFileMode)0x1ED); // the hopper looks for its stop file here
        string stop = Path.Combine(scratch.Path, "stop");
        string uid = _start.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using (var first = System.Diagnostics.Process.Start("setpriv", ["--reuid", uid, "--regid", uid, "--clear-groups", "/usr/bin/python3", "-c",
            $"import os,time\nwhile not os.path.exists('{stop}'):\n    time.sleep(0.002)\n    if os.fork(): os._exit(0)\n"])!)
            await first.WaitForExitAsync(); // the first hop
        bool Hopping() => Directory.EnumerateDirectories("/proc").Any(d => int.TryParse(Path.GetFileName(d), out int pid) && Proc.Uids(pid) is [var real, ..] && real == _start);
        try
        {
            Assert.True(Hopping(), "the hopper runs as the uid");
            await using var server = await TestServer.StartAsync(s => Range(s, 1));

            var refused = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
            Assert.Equal("spawn_failed", refused.Body!["error"]!["code"]!.GetValue<string>());
            Assert.True(Hopping(), "the server must never touch a process it did not start");
        }
        finally
        {
            File.WriteAllText(stop, "");
            await Proc.WaitForAsync(() => !Hopping(), TimeSpan.FromSeconds(30), "the hopper to stop");
        }
    }

    [Fact(Timeout = 30_000)]
    public void A_start_takes_the_uids_its_own_crashed_process_left_marked_and_leaves_another_data_directorys_to_it()
    {
        File.WriteAllText(Path.Combine(_leases, "1000"), "pid 1 data /srv/mine\n");
        File.WriteAllText(Path.Combine(_leases, "1001"), "pid 2 data /srv/other\n");
        File.WriteAllText(Path.Combine(_leases, "1002"), "pid 3 data /srv/mine\n");
        File.WriteAllText(Path.Combine(_leases, "1003"), "");
        using var leases = Corral.Server.Internal.Isolation.UidLeases.Open(_leases, out string? problem);
        Assert.Null(problem);

        // 1002 still has a process; 1001's task directories are the other server's to close before its uid serves again.
        var taken = leases.Reclaim(new HashSet<int> { 1002 }, "pid 9 data /srv/mine", keep: true);

        Assert.Equal([1000], taken);
        Assert.Equal("pid 2 data /srv/other\n", File.ReadAllText(Path.Combine(_leases, "1001")));
        Assert.False(leases.TryTake(1001, "pid 9 data /srv/mine")); // still marked
        Assert.True(leases.TryTake(1003, "pid 9 data /srv/mine"));
        leases.Release(1000, clean: true);
        Assert.Equal("", File.ReadAllText(Path.Combine(_leases, "1000")));
    }

    [Fact(Timeout = 60_000)]
    public void A_lease_whose_mark_cannot_be_written_is_not_taken_and_is_free_again_once_it_can_be()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Mounting a small tmpfs for the lease directory needs root (CI runs as root).");
        string mount = Directory.CreateTempSubdirectory("corral-uid-full-").FullName;
        Proc.Run("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "corral-test", mount);
        try
        {
            string directory = Path.Combine(mount, "leases");
            using var leases = Corral.Server.Internal.Isolation.UidLeases.Open(directory, out string? problem);
            Assert.Null(problem);
            string filler = Path.Combine(mount, "filler");
            Proc.Run("sh", "-c", $"dd if=/dev/zero of={filler} bs=4k 2>/dev/null; true"); // the disk is full

            Assert.False(leases.TryTake(1000, "pid 9 data /srv/mine"));

            File.Delete(filler);
            Assert.True(leases.TryTake(1000, "pid 9 data /srv/mine"), "the failed take must not keep the uid's lock");
            leases.Release(1000, clean: false); // left marked, to read what the take wrote
            Assert.Equal("pid 9 data /srv/mine\n", File.ReadAllText(Path.Combine(directory, "1000")));
        }
        finally
        {
            Proc.Run("umount", "-l", mount);
            Directory.Delete(mount, recursive: true);
        }
    }

    public void Dispose() => Directory.Delete(_leases, recursive: true);
}
