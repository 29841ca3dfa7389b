using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Isolation;

/// <summary>
/// A uid is handed out again only after what its last task left in the host's shared directories is gone: the next
/// task of that uid reads none of it. With a range of one uid, every task has the same one; tasks share the host's
/// directories here (no private /tmp), as on a host that cannot give them their own.
/// </summary>
public sealed partial class LeftoverTests : IDisposable
{
    private readonly string _leases = Directory.CreateTempSubdirectory("corral-uid-leases-").FullName;
    private readonly int _uid = Proc.UnusedUid();
    private readonly string _tag = "corral-left-" + Guid.NewGuid().ToString("N")[..12];
    private readonly List<string> _made = [];

    public void Dispose()
    {
        // rm, not .NET: a name that is not UTF-8 cannot be deleted through a string; the glob takes what a task made.
        using (var rm = System.Diagnostics.Process.Start("sh", ["-c", $"rm -rf -- \"$@\" /tmp/{_tag}* /dev/shm/{_tag}* /var/tmp/{_tag}* /dev/mqueue/{_tag}* /run/lock/{_tag}*", "sh", .. _made]))
            rm.WaitForExit(TimeSpan.FromSeconds(30));

        Directory.Delete(_leases, recursive: true);
    }

    private static void RequireRoot()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Giving tasks uids of their own needs the server to run as root (CI runs as root).");
    }

    private void OneUid(Dictionary<string, string> s)
    {
        s.Remove("Corral:Isolation:User");
        s["Corral:Isolation:UidRangeStart"] = _uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        s["Corral:Isolation:UidRangeCount"] = "1";
        s["Corral:Isolation:UidLeaseDirectory"] = _leases;
        s["Corral:Isolation:PrivateTmp"] = "false"; // the shared directories themselves: what the sweep is for
    }

    private string Made(string path)
    {
        _made.Add(path);
        return path;
    }

    private static async Task<string> RunAsync(TestServer server, string script)
    {
        var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", script } }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        return r.Body!["result"]!["text"]!.GetValue<string>();
    }

    [Fact(Timeout = 120_000)]
    public async Task What_a_task_left_in_the_shared_directories_is_gone_before_its_uid_runs_the_next_task_and_nothing_else_is_touched()
    {
        RequireRoot();
        // Beside the task's files: a root file a link will point at, a world-writable directory (like /tmp/.X11-unix),
        // and a file of another uid, none of which the sweep may touch.
        string target = Made($"/tmp/{_tag}-target");
        File.WriteAllText(target, "root's");
        string shared = Made($"/tmp/{_tag}-ww");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, (UnixFileMode)0x3FF | UnixFileMode.StickyBit); // 1777
        string others = Made($"/tmp/{_tag}-other");
        File.WriteAllText(others, "another uid's");
        Interop.Chown(others, _uid + 1, _uid + 1);
        Made($"/tmp/{_tag}-file");
        Made($"/tmp/{_tag}-link");
        Made($"/dev/shm/{_tag}-dir");
        Made($"/var/tmp/{_tag}-var");
        Made($"/run/lock/{_tag}-lock");
        Made($"/tmp/{_tag}-locked");

        await using var server = await TestServer.StartAsync(OneUid);
        string first = await RunAsync(server, $"""
            echo secret > /tmp/{_tag}-file; ln -s {target} /tmp/{_tag}-link; mkdir /dev/shm/{_tag}-dir; echo s > /dev/shm/{_tag}-dir/f
            echo v > /var/tmp/{_tag}-var; echo k > /run/lock/{_tag}-lock; echo inner > {shared}/mine; echo odd > /tmp/{_tag}-$'\xff'
            mkdir /tmp/{_tag}-locked; echo l > /tmp/{_tag}-locked/f; chmod 500 /tmp/{_tag}-locked; echo HOME=$HOME
            """);
        string firstHome = first.Split('\n').Single(l => l.StartsWith("HOME=", StringComparison.Ordinal))[5..];

        string second = await RunAsync(server, $"""
            id -u; for f in /tmp/{_tag}-file /tmp/{_tag}-link /dev/shm/{_tag}-dir /var/tmp/{_tag}-var /run/lock/{_tag}-lock {shared}/mine /tmp/{_tag}-$'\xff' /tmp/{_tag}-locked; do [ -e "$f" ] || [ -L "$f" ] && echo "left $f"; done
            ls {firstHome} >/dev/null 2>&1 && echo "entered the first task's home"; echo done
            """);
        Assert.Equal($"{_uid}\ndone\n", second);
        Assert.Equal("root's", File.ReadAllText(target));
        Assert.Equal("another uid's", File.ReadAllText(others));
        Assert.True(Directory.Exists(shared));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_posix_message_queue_a_task_made_through_dev_mqueue_is_gone_before_its_uid_runs_the_next_task()
    {
        RequireRoot();
        if (Proc.MessageQueueMountMissing() is { } why)
            Assert.Skip(why);
        // A file made there is a queue of the host's IPC namespace, whatever the task's: the sweep's to remove.
        string queue = Made($"/dev/mqueue/{_tag}-q");
        await using var server = await TestServer.StartAsync(OneUid);
        Assert.Equal("made\n", await RunAsync(server, $": > {queue} && echo made"));
        Assert.Equal($"{_uid}\n", await RunAsync(server, $"id -u; [ -e {queue} ] && echo left; true"));
        Assert.False(File.Exists(queue));
    }

    [Fact(Timeout = 120_000)]
    public async Task What_a_uid_of_the_range_left_before_a_start_is_gone_before_that_uid_runs_a_task()
    {
        RequireRoot();
        string left = Made($"/dev/shm/{_tag}-crashed");
        File.WriteAllText(left, "from a server that crashed");
        Interop.Chown(left, _uid, _uid);

        await using var server = await TestServer.StartAsync(OneUid);
        Assert.Equal($"{_uid}\ngone\n", await RunAsync(server, $"id -u; [ -e {left} ] && echo there || echo gone"));
        Assert.False(File.Exists(left));
    }

    [Fact(Timeout = 120_000)]
    public async Task What_the_last_task_left_is_gone_once_the_server_has_stopped()
    {
        RequireRoot();
        string left = Made($"/tmp/{_tag}-last");
        var server = await TestServer.StartAsync(OneUid);
        try
        {
            Assert.Equal("left\n", await RunAsync(server, $"echo s > {left} && echo left"));
        }
        finally
        {
            await server.DisposeAsync(); // a clean stop, right after the task: its uid's last sweep is part of stopping
        }

        Assert.False(File.Exists(left));
    }

    [Fact(Timeout = 180_000)]
    public async Task After_a_crash_the_next_task_of_a_uid_cannot_enter_the_directories_of_the_task_before()
    {
        RequireRoot();
        string data = Made(Directory.CreateTempSubdirectory("corral-left-data-").FullName);
        File.SetUnixFileMode(data, Corral.Server.Internal.Storage.Files.TraverseOnly); // tasks pass through to their own directories
        ServerProcess? first = null, second = null;
        try
        {
            first = await ServerProcess.StartAsync(data, OneUid);
            var created = await first.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "echo mine > $HOME/mine; echo $$ > $HOME/pid; exec sleep 60" } });
            string home = Path.Combine(data, "tasks", created.Id!, "home"), mine = Path.Combine(home, "mine");
            int pid = await Proc.ReadPidFileAsync(Path.Combine(home, "pid"), TimeSpan.FromSeconds(30));
            var sleeper = Proc.Identify(pid);
            first.Kill();
            // The task's process goes too (as a lost machine would take it): its uid is then free at the next start.
            Proc.KillIfAlive(sleeper);
            await Proc.WaitForAsync(() => Proc.State(pid) == '-', TimeSpan.FromSeconds(15), "the task's process to be gone (reaped)");

            second = await ServerProcess.StartAsync(data, OneUid);
            var next = await second.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"id -u; cat {mine} 2>/dev/null || echo denied" } }, wait: 60);
            Assert.True(next.Status == HttpStatusCode.OK, next.Body?.ToJsonString());
            Assert.Equal($"{_uid}\ndenied\n", next.Body!["result"]!["text"]!.GetValue<string>());
        }
        finally
        {
            first?.Kill();
            second?.Kill();
        }
    }

    [Fact(Timeout = 60_000)]
    public void A_scan_finds_raw_names_links_themselves_and_entries_deep_in_directories_others_may_write_in()
    {
        RequireRoot();
        string scratch = Made(Directory.CreateTempSubdirectory("corral-scan-").FullName);
        int wanted = _uid, task = _uid + 1, agents = _uid + 2;
        void Own(string path, int uid, int? gid = null) => Interop.Chown(path, uid, gid ?? uid);
        string Dir(string relative, int mode, int owner, int? gid = null)
        {
            string path = Directory.CreateDirectory(Path.Combine(scratch, relative)).FullName;
            File.SetUnixFileMode(path, (UnixFileMode)mode);
            Own(path, owner, gid);
            return path;
        }

        // Found: a file, a link (not what it points at), a raw name, and files a level or more down in directories
        // another uid may write in: root's 1777, a task's 0777 (/tmp/cache), a 2770 of the agents group.
        // Not: a file in a directory only its owner may write in (the uid could not have put it there, nor could it be
        // swept by it); and nothing of another uid.
        Dir("root-ww", 0x3FF | 0x200, 0);
        Dir("task-ww", 0x3FF, task);
        Dir("task-ww/deeper", 0x3FF, task);
        Dir("agents", 0x1F8 | 0x400, task, agents); // 2770
        Dir("private", 0x1ED, task); // 0755
        string[] files = ["plain", "root-ww/in-root-ww", "task-ww/deeper/in-task-ww", "agents/in-agents", "private/in-private"];
        foreach (string file in files)
        {
            File.WriteAllText(Path.Combine(scratch, file), "x");
            Own(Path.Combine(scratch, file), wanted);
        }

        File.WriteAllText(Path.Combine(scratch, "task-ww", "others"), "x");
        Own(Path.Combine(scratch, "task-ww", "others"), task);
        File.CreateSymbolicLink(Path.Combine(scratch, "link"), "/etc/passwd");
        Own(Path.Combine(scratch, "link"), wanted);
        byte[] odd = [.. System.Text.Encoding.UTF8.GetBytes(scratch + "/odd-"), 0xFF];
        Interop.MakeFile(odd, wanted);

        var scan = Corral.Server.Internal.Isolation.Leftovers.Find([scratch, "/no/such/directory"], u => u == wanted, agents);

        Assert.Null(scan.Failure);
        var found = scan.Found[wanted].Select(p => Convert.ToHexString(p)).Order().ToList();
        var expected = files[..4].Append("link").Select(n => System.Text.Encoding.UTF8.GetBytes(Path.Combine(scratch, n))).Append(odd)
            .Select(p => Convert.ToHexString(p)).Order().ToList();
        Assert.Equal(expected, found);
        Assert.Single(scan.Found);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_uid_held_back_for_what_it_left_serves_again_once_the_sweep_can_remove_it()
    {
        RequireRoot();
        string stuck = Made($"/tmp/{_tag}-stuck");
        await using var server = await TestServer.StartAsync(OneUid);
        var holder = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"echo x > {stuck}; sleep 60" } });
        await Proc.WaitForAsync(() => File.Exists(stuck), TimeSpan.FromSeconds(30), "the task's file");
        Chattr("+i", stuck); // immutable: no rm removes it, so the sweep cannot
        try
        {
            await server.Http.CancelAsync(holder.Id!);
            await server.Http.WaitForEndAsync(holder.Id!);
            var refused = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 30);
            Assert.Equal("spawn_failed", refused.Body!["error"]!["code"]!.GetValue<string>());
            Assert.True(File.Exists(stuck));
        }
        finally
        {
            Chattr("-i", stuck);
        }

        // Removable again: the next check sweeps it and hands the uid out.
        await Proc.WaitForAsync(async () => (await server.Http.CreateAsync(new { agent = "command", command = new[] { "id", "-u" } }, wait: 30)).TaskStatus == "succeeded",
            TimeSpan.FromSeconds(60), "the held-back uid to serve again");
        Assert.False(File.Exists(stuck));
    }

    private static void Chattr(string change, string path)
    {
        using var chattr = System.Diagnostics.Process.Start("chattr", [change, path])!;
        Assert.True(chattr.WaitForExit(TimeSpan.FromSeconds(30)) && chattr.ExitCode == 0, $"chattr {change} {path}");
    }

    private static partial class Interop
    {
        [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
        private static partial int lchown(string path, int owner, int group);

        [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
        private static unsafe partial int open(byte* path, int flags, int mode);

        [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true)]
        private static partial int fchown(int fd, int owner, int group);

        [System.Runtime.InteropServices.LibraryImport("libc")]
        private static partial int close(int fd);

        /// <summary>Creates a file by a raw name (not UTF-8) owned by <paramref name="uid"/>.</summary>
        public static unsafe void MakeFile(byte[] name, int uid)
        {
            byte[] terminated = [.. name, 0];
            fixed (byte* path = terminated)
            {
                int fd = open(path, 0x41 | 0x80000, 0x1A4); // O_WRONLY | O_CREAT | O_CLOEXEC, 0644
                if (fd < 0 || fchown(fd, uid, uid) != 0)
                    throw new IOException($"creating a raw name: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
                close(fd);
            }
        }

        public static void Chown(string path, int uid, int gid)
        {
            if (lchown(path, uid, gid) != 0)
                throw new IOException($"lchown {path}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }
}
