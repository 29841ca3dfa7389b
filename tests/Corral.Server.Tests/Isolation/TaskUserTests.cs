using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Isolation;

/// <summary>With a uid of its own (the default when the server is root), a task cannot reach its neighbours, the server's data or its own containment.</summary>
public sealed class TaskUserTests
{
    private static void RequireRoot()
    {
        if (Environment.UserName != "root")
            Assert.Skip("Giving tasks uids of their own needs the server to run as root (CI runs as root).");
    }

    /// <summary>A server with the default isolation: as root, a fresh uid per task.</summary>
    private static Task<TestServer> StartAsync(Action<Dictionary<string, string>>? configure = null) =>
        TestServer.StartAsync(s =>
        {
            s.Remove("Corral:Isolation:User");
            configure?.Invoke(s);
        });

    private static Dictionary<string, string> Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);

    /// <summary>
    /// A data directory outside /tmp, as deployed (/var/lib/corral): one under /tmp keeps /tmp shared, or the task would
    /// not see its own directories. The test deletes it.
    /// </summary>
    private static string DeployedDataDirectory()
    {
        string data = Directory.CreateDirectory($"/var/lib/corral-test-{Guid.NewGuid():N}").FullName;
        File.SetUnixFileMode(data, Corral.Server.Internal.Storage.Files.TraverseOnly);
        return data;
    }

    [Fact(Timeout = 120_000)]
    public async Task Each_task_runs_as_an_unprivileged_uid_of_its_own_with_its_own_home_and_tmpdir()
    {
        RequireRoot();
        await using var server = await StartAsync();
        string script = "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); echo home=$HOME; echo tmp=$TMPDIR; echo cwd=$(pwd); " +
                        "echo owner=$(stat -c %u $HOME); echo mode=$(stat -c %a $HOME); echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2); touch $HOME/x && echo write=ok";
        // At once: two tasks never share a uid (one after the other, a swept uid may serve again).
        var both = await Task.WhenAll(
            server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", script + "; sleep 1" } }, wait: 30),
            server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", script + "; sleep 1" } }, wait: 30));
        var (first, second) = (both[0], both[1]);
        Assert.Equal(HttpStatusCode.OK, first.Status);
        var a = Lines(first.Body!["result"]!["text"]!.GetValue<string>());
        var b = Lines(second.Body!["result"]!["text"]!.GetValue<string>());

        int uid = int.Parse(a["uid"]);
        Assert.True(uid >= 1_900_000_000, $"uid {uid}");
        Assert.NotEqual(a["uid"], b["uid"]);
        Assert.Equal(uid, first.Body["uid"]!.GetValue<int>());
        Assert.Equal(a["uid"], a["owner"]);
        Assert.Equal("700", a["mode"]);
        Assert.Equal("1", a["nnp"]);
        Assert.Equal("ok", a["write"]);
        string taskDir = Path.Combine(server.DataDirectory, "tasks", first.Id!);
        Assert.Equal(Path.Combine(taskDir, "home"), a["home"]);
        Assert.Equal(Path.Combine(taskDir, "tmp"), a["tmp"]);
        Assert.Equal(Path.Combine(taskDir, "work"), a["cwd"]);
        Assert.DoesNotContain("0", a["groups"].Split(' '));
    }

    [Fact(Timeout = 120_000)]
    public async Task Each_task_has_a_tmp_dev_shm_and_run_lock_of_its_own_that_neither_the_host_nor_another_task_sees()
    {
        RequireRoot();
        string data = DeployedDataDirectory();
        try
        {
            await using var server = await TestServer.StartAsync(s => s.Remove("Corral:Isolation:User"), dataDirectory: data);
            await OwnTmpAsync(server);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task OwnTmpAsync(TestServer server)
    {
        string name = "corral-own-tmp-" + Guid.NewGuid().ToString("N");
        var holder = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"echo a > /tmp/{name}; echo s > /dev/shm/{name}; echo l > /run/lock/{name}; echo ready; sleep 60" } });
        var running = await server.Http.WaitForAsync(holder.Id!, t => t["status"]!.GetValue<string>() == "running");
        string own = Path.Combine(server.DataDirectory, "private", running["uid"]!.GetValue<int>().ToString(System.Globalization.CultureInfo.InvariantCulture));
        await Proc.WaitForAsync(() => File.Exists(Path.Combine(own, "tmp", name)) && File.Exists(Path.Combine(own, "dev-shm", name)) && File.Exists(Path.Combine(own, "run-lock", name)),
            TimeSpan.FromSeconds(30), "the first task's files in its uid's own directories");

        var other = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"ls -A /tmp /dev/shm /run/lock | grep -c {name} || true; echo $TMPDIR" } }, wait: 30);
        Assert.Equal("0\n/tmp\n", other.Body!["result"]!["text"]!.GetValue<string>());
        Assert.False(File.Exists(Path.Combine("/tmp", name)));
        Assert.False(File.Exists(Path.Combine("/dev/shm", name)));
        Assert.False(File.Exists(Path.Combine("/run/lock", name)));
        await server.Http.CancelAsync(holder.Id!);
        await server.Http.WaitForEndAsync(holder.Id!);
    }

    private static async Task RequirePrivateIpcAsync()
    {
        RequireRoot();
        try
        {
            await Corral.Processes.ProcessTree.RunAsync(new Corral.Processes.ProcessSpec("/bin/true") { PrivateIpc = true }, TestContext.Current.CancellationToken);
        }
        catch (Corral.Processes.ProcessSpawnException e) when (e.Failure == Corral.Processes.SpawnFailure.ContainmentUnavailable)
        {
            Assert.Skip("This host gives no process an IPC namespace of its own: " + e.Message);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_posix_message_queue_a_task_makes_no_other_task_and_not_the_host_sees_whether_by_mq_open_or_through_dev_mqueue()
    {
        await RequirePrivateIpcAsync();
        if (Proc.MessageQueueMountMissing() is { } why)
            Assert.Skip(why);
        string data = DeployedDataDirectory();
        string name = "corral-mq-" + Guid.NewGuid().ToString("N")[..12];
        // mq_open(3) is the mq_open system call, which uses the IPC namespace's own queues; a file made in /dev/mqueue
        // is a queue of the namespace that mounted it (the host's), whatever the maker's IPC namespace.
        string mq = "import ctypes, os, sys; rt = ctypes.CDLL('librt.so.1', use_errno=True); rt.mq_open.restype = ctypes.c_int; ";
        try
        {
            await using var server = await TestServer.StartAsync(s => s.Remove("Corral:Isolation:User"), dataDirectory: data);
            var holder = await server.Http.CreateAsync(new { agent = "command", command = new[] { "/usr/bin/python3", "-c",
                mq + $"assert rt.mq_open(b'/{name}', os.O_CREAT | os.O_RDWR, 0o666, None) >= 0; open('/dev/mqueue/{name}-file', 'w').close(); " +
                "import time; time.sleep(60)" } });
            var running = await server.Http.WaitForAsync(holder.Id!, t => t["status"]!.GetValue<string>() == "running");
            string own = Path.Combine(data, "private", running["uid"]!.GetValue<int>().ToString(System.Globalization.CultureInfo.InvariantCulture), "dev-mqueue");
            await Proc.WaitForAsync(() => File.Exists(Path.Combine(own, name + "-file")), TimeSpan.FromSeconds(30), "the first task's queue file in its uid's own /dev/mqueue");

            var other = await server.Http.CreateAsync(new { agent = "command", command = new[] { "/usr/bin/python3", "-c",
                mq + $"fd = rt.mq_open(b'/{name}', os.O_RDONLY, 0, None); print(fd, ctypes.get_errno(), sorted(n for n in os.listdir('/dev/mqueue') if n.startswith('{name}')))" } }, wait: 30);
            Assert.Equal("-1 2 []\n", other.Body!["result"]!["text"]!.GetValue<string>()); // ENOENT, and nothing listed
            Assert.DoesNotContain(Directory.EnumerateFileSystemEntries("/dev/mqueue"), e => Path.GetFileName(e).StartsWith(name, StringComparison.Ordinal));
            await server.Http.CancelAsync(holder.Id!);
            await server.Http.WaitForEndAsync(holder.Id!);
        }
        finally
        {
            foreach (string e in Directory.EnumerateFileSystemEntries("/dev/mqueue").Where(e => Path.GetFileName(e).StartsWith(name, StringComparison.Ordinal)))
                File.Delete(e);
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task What_a_task_makes_in_system_v_ipc_no_other_task_sees_and_it_goes_with_the_task()
    {
        await RequirePrivateIpcAsync();
        await using var server = await StartAsync();
        var made = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "ipcmk -M 4096 > /dev/null && ipcmk -Q > /dev/null && cat /proc/sysvipc/shm /proc/sysvipc/msg | wc -l" } }, wait: 30);
        Assert.Equal("succeeded", made.TaskStatus);
        Assert.Equal("4\n", made.Body!["result"]!["text"]!.GetValue<string>()); // two headers, its own two objects, nobody else's
        string uid = made.Body["uid"]!.GetValue<int>().ToString(System.Globalization.CultureInfo.InvariantCulture);
        foreach (string table in new[] { "/proc/sysvipc/shm", "/proc/sysvipc/msg" })
            Assert.DoesNotContain(File.ReadAllLines(table).Skip(1), l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains(uid));
    }

    /// <summary>
    /// Runs <paramref name="test"/> against a server whose only task uid is an unused one (the test is given it, and the
    /// data directory, where a deployed server keeps it), then deletes the data and the uid leases.
    /// </summary>
    private static async Task WithOneUidServerAsync(Func<TestServer, int, string, Task> test, Action<Dictionary<string, string>>? configure = null)
    {
        RequireRoot();
        string data = DeployedDataDirectory();
        string leases = Directory.CreateTempSubdirectory("corral-uid-leases-").FullName;
        int uid = Proc.UnusedUid();
        try
        {
            await using var server = await TestServer.StartAsync(s =>
            {
                s.Remove("Corral:Isolation:User");
                s["Corral:Isolation:UidRangeStart"] = uid.ToString(System.Globalization.CultureInfo.InvariantCulture);
                s["Corral:Isolation:UidRangeCount"] = "1";
                s["Corral:Isolation:UidLeaseDirectory"] = leases;
                configure?.Invoke(s);
            }, dataDirectory: data);
            await test(server, uid, data);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
            Directory.Delete(leases, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_task_reads_its_own_cgroup_but_cannot_list_the_other_trees_and_their_pids()
    {
        RequireRoot();
        await using var server = await StartAsync();
        var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", """
            m=$(awk '$9 == "cgroup2" { print $5; exit }' /proc/self/mountinfo); c=$(sed -n 's/^0:://p' /proc/self/cgroup)
            cat "$m$c/cgroup.procs" > /dev/null 2>&1; echo own=$?
            ls "$m$(dirname "$c")" > /dev/null 2>&1; echo list=$?
            """ } }, wait: 60);
        var seen = Lines(r.Body!["result"]!["text"]!.GetValue<string>());
        if (seen.GetValueOrDefault("own") != "0")
            Assert.Skip("This host has no cgroup v2 hierarchy Corral can use.");
        Assert.NotEqual("0", seen["list"]);
    }

    [Fact(Timeout = 120_000)]
    public async Task A_task_in_its_own_directory_cannot_reach_the_workspaces_and_a_name_a_task_made_first_is_not_its_to_keep()
    {
        RequireRoot();
        await using var server = await StartAsync();
        string name = "ws-" + Guid.NewGuid().ToString("N")[..8];
        var owner = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "echo secret > config.env; pwd" }, workdir = name }, wait: 60);
        Assert.Equal("succeeded", owner.TaskStatus);
        string workspace = owner.Body!["result"]!["text"]!.GetValue<string>().Trim();
        string root = Path.GetDirectoryName(workspace)!;

        // Before, every task had the agents group: it listed every workspace, read its files and made names in the root.
        var other = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c",
            $"ls {root} >/dev/null 2>&1; echo ls=$?; cat {workspace}/config.env >/dev/null 2>&1; echo cat=$?; mkdir {root}/squat 2>/dev/null; echo mkdir=$?" } }, wait: 60);
        var seen = Lines(other.Body!["result"]!["text"]!.GetValue<string>());
        Assert.NotEqual("0", seen["ls"]);
        Assert.NotEqual("0", seen["cat"]);
        Assert.NotEqual("0", seen["mkdir"]);

        // A task of a workspace may make a name in the root, and close it, first: the task that asks for that name gets
        // it as the server's, shared through the group, whatever uid either has.
        var squatter = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"mkdir {root}/claimed-{name} && chmod 0700 {root}/claimed-{name} && echo made" }, workdir = name }, wait: 60);
        Assert.Equal("made\n", squatter.Body!["result"]!["text"]!.GetValue<string>());
        var claimant = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", "stat -c '%u %a' .; touch ok && echo wrote" }, workdir = $"claimed-{name}" }, wait: 60);
        Assert.Equal("0 2770\nwrote\n", claimant.Body!["result"]!["text"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task The_next_task_of_a_uid_finds_its_tmp_empty_and_writable_whatever_the_last_one_left_or_did_to_it()
    {
        await WithOneUidServerAsync(async (server, uid, data) =>
        {
            // The first task fills its /tmp and /dev/shm (a tree in a directory it then closes) and closes /tmp itself.
            var first = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c",
                "mkdir -p /tmp/d/e && echo s > /tmp/d/e/f && echo s > /dev/shm/g && chmod 000 /tmp/d && " +
                "(chmod 500 /tmp 2>/dev/null && echo chmod=yes || echo chmod=no)" } }, wait: 60);
            Assert.Equal("chmod=no\n", first.Body!["result"]!["text"]!.GetValue<string>()); // like /tmp: the task's to write in, not to change
            var second = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c",
                "echo uid=$(id -u); echo tmp=$(ls -A /tmp | wc -l); echo shm=$(ls -A /dev/shm | wc -l); echo x > /tmp/x && echo write=ok; " +
                $"ls {data}/private > /dev/null 2>&1; echo reach=$?" } }, wait: 60);
            var seen = Lines(second.Body!["result"]!["text"]!.GetValue<string>());
            Assert.NotEqual("0", seen["reach"]); // no task reaches a uid's directories but through its own mounts
            Assert.Equal(uid.ToString(System.Globalization.CultureInfo.InvariantCulture), seen["uid"]);
            Assert.Equal("0", seen["tmp"]);
            Assert.Equal("0", seen["shm"]);
            Assert.Equal("ok", seen["write"]);
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task A_uid_whose_keyring_a_task_locked_is_held_back_after_the_one_task_it_failed_not_handed_out_again()
    {
        await WithOneUidServerAsync(async (server, uid, data) =>
        {
            // With two uids, a held-back one is checked again whenever the other is still being swept: it must stay out.
            // keyctl(KEYCTL_SETPERM, @u, 0): no later process of the uid may clear it (nor read it), even as its owner.
            var locker = await server.Http.CreateAsync(new { agent = "command", command = new[] { "perl", "-e", "exit(syscall(250, 5, -4, 0) == 0 ? 0 : 1)" } }, wait: 60);
            Assert.Equal("succeeded", locker.TaskStatus);
            // The next task given that uid cannot start as it (its keyrings cannot be emptied): it fails, and the uid
            // serves no other.
            var statuses = new List<string>();
            for (int i = 0; i < 6; i++)
            {
                var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "true" } }, wait: 60);
                statuses.Add($"{r.TaskStatus} {r.Body?["uid"]} {r.Body?["error"]?["message"]}".Trim());
            }

            Assert.True(statuses.Count(s => !s.StartsWith("succeeded", StringComparison.Ordinal)) <= 1, string.Join(" | ", statuses));
            Assert.All(statuses.Where(s => !s.StartsWith("succeeded", StringComparison.Ordinal)), s => Assert.Contains("keyrings", s));
        }, s => s["Corral:Isolation:UidRangeCount"] = "2");
    }

    [Fact]
    public void A_tree_covers_the_shared_directories_only_when_each_one_that_exists_was_bound_for_it()
    {
        string[] shared = ["/tmp", "/var/tmp", "/run/lock"];
        static bool Exists(string d) => d != "/run/lock"; // not on this host
        var all = new Dictionary<string, string> { ["/tmp"] = "a", ["/var/tmp"] = "b" };
        Assert.True(Corral.Server.Internal.Isolation.TaskUsers.Covers(shared, all, Exists));
        Assert.False(Corral.Server.Internal.Isolation.TaskUsers.Covers(shared, new Dictionary<string, string> { ["/var/tmp"] = "b" }, Exists)); // a workdir in /tmp
        Assert.False(Corral.Server.Internal.Isolation.TaskUsers.Covers(shared, null, Exists));
        Assert.False(Corral.Server.Internal.Isolation.TaskUsers.Covers(shared, all, _ => true)); // /run/lock appeared meanwhile
        Assert.True(Corral.Server.Internal.Isolation.TaskUsers.Covers([], null, Exists));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_uid_whose_task_had_every_shared_directory_of_its_own_is_swept_without_a_scan_of_the_hosts_and_one_that_shared_tmp_is_not()
    {
        // A file of the task's uid in the host's /tmp that no task of it made: only a scan of the host's /tmp removes it.
        string planted = $"/tmp/corral-unscanned-{Guid.NewGuid():N}";
        await WithOneUidServerAsync(async (server, uid, data) => // the next task runs once the last one's sweep is done
        {
            try
            {
                File.WriteAllText(planted, "x"); // after the start's own scan
                Corral.Server.Internal.Storage.Files.Own(planted, uid, uid);

                async Task<string> Run(string? workdir)
                {
                    var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", $"id -u; [ -e {planted} ] && echo sees-the-hosts-tmp; true" }, workdir }, wait: 60);
                    Assert.Equal(HttpStatusCode.OK, r.Status);
                    return r.Body!["result"]!["text"]!.GetValue<string>();
                }

                string expected = uid.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n";
                Assert.Equal(expected, await Run(null)); // a /tmp of its own
                Assert.Equal(expected, await Run(null)); // the same uid: the first one's sweep is done
                Assert.True(File.Exists(planted), "a sweep of a uid whose tree saw only its own /tmp, /var/tmp, /dev/shm… scanned the host's");

                Assert.Equal(expected + "sees-the-hosts-tmp\n", await Run("/tmp")); // a workdir in /tmp: the host's /tmp stays the task's
                Assert.Equal(expected, await Run(null));
                Assert.False(File.Exists(planted), "the sweep of a uid whose task shared the host's /tmp did not scan it");
            }
            finally
            {
                File.Delete(planted);
            }
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task Without_an_ipc_namespace_of_its_own_a_queue_a_task_made_with_mq_open_is_swept_from_the_hosts_dev_mqueue_though_its_directories_were_its_own()
    {
        if (Proc.MessageQueueMountMissing() is { } why)
            Assert.Skip(why);
        string name = "corral-mq-" + Guid.NewGuid().ToString("N")[..12];
        await WithOneUidServerAsync(async (server, uid, data) =>
        {
            try
            {
                // The host's IPC namespace: the queue is in the host's /dev/mqueue, whatever the task's own /dev/mqueue is.
                var made = await server.Http.CreateAsync(new { agent = "command", command = new[] { "/usr/bin/python3", "-c",
                    "import ctypes, os; rt = ctypes.CDLL('librt.so.1', use_errno=True); rt.mq_open.restype = ctypes.c_int; " +
                    $"print(rt.mq_open(b'/{name}', os.O_CREAT | os.O_RDWR, 0o600, None) >= 0)" } }, wait: 60);
                Assert.Equal("True\n", made.Body!["result"]!["text"]!.GetValue<string>());
                Assert.True(File.Exists($"/dev/mqueue/{name}"));

                var next = await server.Http.CreateAsync(new { agent = "command", command = new[] { "id", "-u" } }, wait: 60); // after the sweep
                Assert.Equal(uid.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n", next.Body!["result"]!["text"]!.GetValue<string>());
                Assert.False(File.Exists($"/dev/mqueue/{name}"), "the queue outlived its uid's sweep");
            }
            finally
            {
                File.Delete($"/dev/mqueue/{name}");
            }
        }, s => s["Corral:Isolation:PrivateIpc"] = "false");
    }

    [Fact(Timeout = 120_000)]
    public async Task A_server_whose_data_is_under_tmp_warns_at_start_that_its_tasks_share_the_hosts_tmp()
    {
        RequireRoot();
        string data = Directory.CreateTempSubdirectory("corral-under-tmp-").FullName;
        File.SetUnixFileMode(data, Corral.Server.Internal.Storage.Files.TraverseOnly);
        string leases = Directory.CreateTempSubdirectory("corral-uid-leases-").FullName;
        try
        {
            var server = await ServerProcess.StartAsync(data, s =>
            {
                s.Remove("Corral:Isolation:User");
                s["Corral:Isolation:UidLeaseDirectory"] = leases;
            });
            try
            {
                await Proc.WaitForAsync(() => server.Log.Contains("Tasks share /tmp with the host", StringComparison.Ordinal), TimeSpan.FromSeconds(30),
                    "the warning that tasks share /tmp");
                Assert.DoesNotContain("Tasks share /var/tmp", server.Log);
            }
            finally
            {
                server.Kill();
            }
        }
        finally
        {
            Directory.Delete(data, recursive: true);
            Directory.Delete(leases, recursive: true);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task A_task_cannot_see_or_signal_another_tasks_process_see_the_servers_read_the_database_or_move_itself_out_of_its_cgroup()
    {
        RequireRoot();
        await using var server = await StartAsync();
        var victim = await server.Http.CreateAsync(new { agent = "command", command = new[] { "sleep", "60" } });
        await server.Http.WaitForAsync(victim.Id!, t => t["status"]!.GetValue<string>() == "running");
        int victimPid = 0;
        await Proc.WaitForAsync(async () =>
        {
            var ledger = (await server.Http.SendAsync(HttpMethod.Get, $"/v1/tasks/{victim.Id}/processes")).Body!;
            var sleep = ledger["processes"]!.AsArray().FirstOrDefault(p => p!["command"]!.GetValue<string>().Contains("sleep 60"));
            victimPid = sleep?["pid"]?.GetValue<int>() ?? 0;
            return victimPid > 0;
        }, TimeSpan.FromSeconds(30), "the victim's sleep in its process ledger");

        string database = Path.Combine(server.DataDirectory, "corral.db");
        string otherHome = Path.Combine(server.DataDirectory, "tasks", victim.Id!, "home");
        string script = $"kill -TERM {victimPid} 2>/dev/null; echo kill=$?; cat {database} > /dev/null 2>&1; echo db=$?; " +
                        $"cat /proc/{victimPid}/cmdline > /dev/null 2>&1; echo proc=$?; cat /proc/{Environment.ProcessId}/cmdline > /dev/null 2>&1; echo server=$?; " +
                        "echo self=$(ls /proc/$$/cmdline > /dev/null 2>&1 && echo seen); " +
                        $"ls {otherHome} > /dev/null 2>&1; echo home=$?; ls {server.DataDirectory} > /dev/null 2>&1; echo list=$?; " +
                        "cat /proc/self/cgroup | tail -1 | sed 's/^/cgroup=/'; echo $$ > /sys/fs/cgroup/unified/cgroup.procs 2>/dev/null; echo move=$?";
        var attacker = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", script } }, wait: 30);
        var seen = Lines(attacker.Body!["result"]!["text"]!.GetValue<string>());
        Assert.NotEqual("0", seen["kill"]);
        Assert.NotEqual("0", seen["db"]);
        Assert.NotEqual("0", seen["home"]);
        Assert.NotEqual("0", seen["list"]);
        Assert.NotEqual("0", seen["move"]);
        Assert.NotEqual("0", seen["proc"]); // not in its /proc at all: neither the victim's command line nor the server's
        Assert.NotEqual("0", seen["server"]);
        Assert.Equal("seen", seen["self"]);
        Assert.True(Proc.IsAlive(victimPid), "the victim must survive its neighbour");
        Assert.Equal("running", (await server.Http.GetTaskAsync(victim.Id!)).TaskStatus);
        await server.Http.CancelAsync(victim.Id!);
        Assert.Equal("cancelled", (await server.Http.WaitForEndAsync(victim.Id!))["status"]!.GetValue<string>());
    }

    [Fact(Timeout = 120_000)]
    public async Task A_task_cannot_use_a_tokenless_servers_api_over_loopback_though_the_host_can()
    {
        RequireRoot();
        await using var server = await StartAsync();
        var other = await server.Http.CreateAsync(new { agent = "command", command = new[] { "echo", "NEIGHBOURS-OUTPUT" } }, wait: 30);
        Assert.Equal(HttpStatusCode.OK, other.Status);
        // Plain bash: a raw HTTP request through /dev/tcp, on one connection and then on a second one.
        string request = $"GET /v1/tasks/{other.Id}/output HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n";
        string script = $"for i in 1 2; do exec 3<>/dev/tcp/127.0.0.1/{server.BaseAddress.Port} || exit 9; printf '{request}' >&3; cat <&3; exec 3<&-; done";
        var attacker = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", script } }, wait: 30);
        string seen = attacker.Body!["result"]!["text"]!.GetValue<string>();
        Assert.Equal(2, seen.Split("HTTP/1.1 403").Length - 1);
        Assert.Contains("\"code\":\"forbidden\"", seen);
        Assert.DoesNotContain("NEIGHBOURS-OUTPUT", seen);
        // The host's own clients (this test runs as root) are served as before.
        var output = await server.Http.GetStringAsync($"/v1/tasks/{other.Id}/output");
        Assert.Contains("NEIGHBOURS-OUTPUT", output);
    }

    [Fact(Timeout = 180_000)]
    public async Task What_a_hostile_agent_plants_where_its_transcript_goes_is_never_read_through_and_never_blocks_the_server()
    {
        RequireRoot();
        await using var server = await StartAsync();
        // A root-only file that would pass for a transcript with a final answer.
        string secret = $"/var/lib/corral-test-secret-{Guid.NewGuid():N}";
        File.WriteAllText(secret, """{"type":"assistant","message":{"id":"m","role":"assistant","content":[{"type":"text","text":"ROOT-ONLY"}],"stop_reason":"end_turn"}}""" + "\n");
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        try
        {
            // A link to it, a hard link to it (where the kernel lets an unprivileged uid make one), a FIFO that would
            // block whoever opens it and a sparse terabyte: each task ends (no result), nothing of them anywhere.
            foreach (string prompt in new[] { $"plant:link {secret}", $"plant:hardlink {secret}", "plant:fifo", "plant:sparse" })
            {
                var task = await server.Http.CreateAsync(new { agent = "claude-code", prompt }, wait: 60);
                Assert.Equal("lost", task.TaskStatus); // its result is lost: the transcript is not one to trust
                Assert.DoesNotContain("ROOT-ONLY", task.Body!.ToJsonString());

                // A later task that resumes the session gets nothing of it either.
                var resumed = await server.Http.CreateAsync(new { agent = "claude-code", prompt = "hello", resumeSessionId = task.Body["sessionId"]!.GetValue<string>() }, wait: 60);
                Assert.Equal("succeeded", resumed.TaskStatus);
            }

            string sessions = Path.Combine(server.DataDirectory, "sessions");
            var saved = Directory.Exists(sessions) ? Directory.EnumerateFiles(sessions, "*", SearchOption.AllDirectories).ToList() : [];
            Assert.All(saved, f => Assert.True(new FileInfo(f).Length < 1 << 20, $"{f}: {new FileInfo(f).Length} bytes"));
            Assert.DoesNotContain(saved, f => File.ReadAllText(f).Contains("ROOT-ONLY"));
        }
        finally
        {
            File.Delete(secret);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task An_agent_that_reports_another_sessions_id_cannot_replace_that_sessions_saved_state()
    {
        RequireRoot();
        await using var server = await StartAsync();
        var victim = await server.Http.CreateAsync(new { agent = "claude-code", prompt = "claim" }, wait: 60);
        Assert.Equal("succeeded", victim.TaskStatus);
        string session = victim.Body!["sessionId"]!.GetValue<string>();
        string saved = Path.Combine(server.DataDirectory, "sessions", session + ".jsonl");
        string before = File.ReadAllText(saved);
        Assert.Contains("written by " + session, before);
        var written = File.GetLastWriteTimeUtc(saved);

        // Another task's agent writes a transcript under the victim's id and reports that id as its own.
        var attacker = await server.Http.CreateAsync(new { agent = "claude-code", prompt = $"claim:{session}" }, wait: 60);
        Assert.Equal("succeeded", attacker.TaskStatus);
        Assert.Equal(before, File.ReadAllText(saved)); // the victim's own, still
        Assert.DoesNotContain("written by " + session, File.ReadAllText(saved).Replace(before, ""));

        // The session's own next task does replace it.
        var next = await server.Http.CreateAsync(new { agent = "claude-code", prompt = "claim", resumeSessionId = session }, wait: 60);
        Assert.Equal("succeeded", next.TaskStatus);
        Assert.True(File.GetLastWriteTimeUtc(saved) > written, "the session's own task saves its state again");
    }

    [Fact(Timeout = 120_000)]
    public async Task In_session_mode_an_escapee_that_cleared_its_environment_and_closed_the_pipes_is_found_by_its_uid()
    {
        RequireRoot();
        await using var server = await StartAsync(s => s["Corral:Containment"] = "Session");
        // The escapee writes its pid in the task's workdir, where the test reads it (not /tmp: what a uid leaves there is
        // swept once its task ends).
        string script = "setsid env -i /bin/sh -c \"echo \\$\\$ > $PWD/escapee.tmp; mv $PWD/escapee.tmp $PWD/escapee.pid; exec sleep 300\" < /dev/null > /dev/null 2>&1 & " +
                        "while [ ! -s escapee.pid ]; do sleep 0.05; done; exit 0";
        var r = await server.Http.CreateAsync(new { agent = "command", command = new[] { "bash", "-c", script } }, wait: 60);
        Assert.Equal(HttpStatusCode.OK, r.Status);
        int escapee = int.Parse(File.ReadAllText(Path.Combine(r.Body!["workdir"]!.GetValue<string>(), "escapee.pid")).Trim());
        var killed = r.Body!["process"]!["killed"]!.AsArray();
        var entry = Assert.Single(killed, k => k!["pid"]!.GetValue<int>() == escapee);
        Assert.Equal("uid", entry!["foundBy"]!.GetValue<string>());
        Assert.Equal("session", r.Body["process"]!["containment"]!.GetValue<string>());
        await Proc.WaitForAsync(() => !Proc.IsAlive(escapee), TimeSpan.FromSeconds(10), "the escapee to be gone");
    }
}
