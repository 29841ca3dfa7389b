using System.Diagnostics;
using System.Text;
using Corral.Processes.Internal.Io;
using Corral.Processes.Internal.Spawning;
using Corral.Processes.Interop;

namespace Corral.Processes.Tests.Spawning;

/// <summary>How the posix_spawn path's helper recognises the child waiting at the gate (to move it into its leaf).</summary>
public sealed class CgroupJoinGateTests
{
    [Fact(Timeout = 60_000)]
    public async Task Only_a_process_holding_arrive_open_for_writing_at_the_gate_descriptor_is_the_gate_child()
    {
        // Not a PidDir: its cleanup reads every file in it, and opening a FIFO with no writer blocks.
        string dir = Directory.CreateTempSubdirectory("corral-gate-").FullName;
        string fifo = Path.Combine(dir, "arrive");
        Assert.Equal(0, Mkfifo(fifo));

        // The helper's own descriptor for "arrive" is read-only; each thread of ours, and any child of ours not yet
        // exec'd, shows it under its number too.
        int reader = Open(fifo, Libc.O_RDONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC);
        Assert.True(reader >= 0);
        try
        {
            byte[] link = Encoding.UTF8.GetBytes(Fd.ReadLink($"/proc/self/fd/{reader}")!);
            using var child = Process.Start(new ProcessStartInfo("/bin/sh", ["-c", "exec 9>\"$F\"; echo ready; exec sleep 300"])
            {
                RedirectStandardOutput = true,
                Environment = { ["F"] = fifo },
            })!;
            try
            {
                Assert.Equal("ready", await child.StandardOutput.ReadLineAsync(TestContext.Current.CancellationToken));
                Assert.True(CgroupJoinGate.IsBlockedAtGate(child.Id, 9, link));
                Assert.False(CgroupJoinGate.IsBlockedAtGate(child.Id, 8, link));

                Assert.False(CgroupJoinGate.IsBlockedAtGate(Environment.ProcessId, reader, link));
                int thread = Directory.EnumerateDirectories("/proc/self/task").Select(d => int.Parse(Path.GetFileName(d))).First(t => t != Environment.ProcessId);
                Assert.False(CgroupJoinGate.IsBlockedAtGate(thread, reader, link));
            }
            finally
            {
                child.Kill();
                await child.WaitForExitAsync(TestContext.Current.CancellationToken);
            }
        }
        finally
        {
            Libc.close(reader);
            Directory.Delete(dir, recursive: true);
        }
    }

    private static unsafe int Mkfifo(string path)
    {
        fixed (byte* p = Utf8Z(path))
            return Libc.mkfifo(p, Convert.ToInt32("600", 8));
    }

    private static unsafe int Open(string path, int flags)
    {
        fixed (byte* p = Utf8Z(path))
            return Libc.open(p, flags, 0);
    }

    private static byte[] Utf8Z(string path) => Encoding.UTF8.GetBytes(path + "\0");
}
