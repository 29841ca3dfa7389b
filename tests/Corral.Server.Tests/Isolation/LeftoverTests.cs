using System.Net;
using Corral.Server.Tests.Support;

namespace Corral.Server.Tests.Isolation;

/// <summary>
/// A uid is handed out again only after what its last task left in the host's shared directories is gone: the next
/// task of that uid reads none of it. With a range of one uid, every task has the same one.
/// </summary>
public sealed partial class LeftoverTests : IDisposable
{
    private readonly string _leases = Directory.CreateTempSubdirectory("corral-uid-leases-").FullName;
    private readonly int _uid = Proc.UnusedUid();
    private readonly string _tag = "corral-left-" + Guid.NewGuid().ToString("N")[..12];
    private readonly List<string> _made = [];

    public void Dispose()
    {
        foreach (string path in _made)
        {
            if (Directory.Exists(path))
                Directory.Delete(path, recursive: true);
            else
                File.Delete(path);
        }

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
    public async Task What_a_task_left_in_tmp_and_dev_shm_is_gone_before_its_uid_runs_the_next_task_and_nothing_else_is_touched()
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

        await using var server = await TestServer.StartAsync(OneUid);
        string first = await RunAsync(server, $"""
            echo secret > /tmp/{_tag}-file; ln -s {target} /tmp/{_tag}-link; mkdir /dev/shm/{_tag}-dir; echo s > /dev/shm/{_tag}-dir/f
            echo v > /var/tmp/{_tag}-var; echo inner > {shared}/mine; echo HOME=$HOME
            """);
        string firstHome = first.Split('\n').Single(l => l.StartsWith("HOME=", StringComparison.Ordinal))[5..];

        string second = await RunAsync(server, $"""
            id -u; for f in /tmp/{_tag}-file /tmp/{_tag}-link /dev/shm/{_tag}-dir /var/tmp/{_tag}-var {shared}/mine; do [ -e "$f" ] || [ -L "$f" ] && echo "left $f"; done
            ls {firstHome} >/dev/null 2>&1 && echo "entered the first task's home"; echo done
            """);
        Assert.Equal($"{_uid}\ndone\n", second);
        Assert.Equal("root's", File.ReadAllText(target));
        Assert.Equal("another uid's", File.ReadAllText(others));
        Assert.True(Directory.Exists(shared));
    }

    [Fact(Timeout = 120_000)]
    public async Task What_a_uid_of_the_range_left_before_a_start_is_gone_when_the_server_takes_requests()
    {
        RequireRoot();
        string left = Made($"/dev/shm/{_tag}-crashed");
        File.WriteAllText(left, "from a server that crashed");
        Interop.Chown(left, _uid, _uid);

        await using var server = await TestServer.StartAsync(OneUid);
        Assert.False(File.Exists(left));
        Assert.Equal($"{_uid}\n", await RunAsync(server, "id -u"));
    }

    private static partial class Interop
    {
        [System.Runtime.InteropServices.LibraryImport("libc", SetLastError = true, StringMarshalling = System.Runtime.InteropServices.StringMarshalling.Utf8)]
        private static partial int lchown(string path, int owner, int group);

        public static void Chown(string path, int uid, int gid)
        {
            if (lchown(path, uid, gid) != 0)
                throw new IOException($"lchown {path}: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
        }
    }
}
