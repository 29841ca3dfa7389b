using System.Reflection;
using System.Runtime.InteropServices;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Tests.Support;

namespace Corral.Processes.Tests.Containment;

/// <summary>
/// Between clone and exec a child of ours holds a copy of our whole descriptor table: another tree's child being
/// spawned, a <c>Process.Start</c> child. When we hold a tree's write end, such a child must not be taken for a
/// holder of it (and signalled: it would kill the other tree's child before it ran). Alone in its collection: the
/// forked copy of this test process holds every descriptor the process has, which would also hold up other tests.
/// </summary>
[Collection(Name)]
public sealed class UnexecutedChildTests
{
    public const string Name = "unexecuted child";

    [Fact(Timeout = 120_000)]
    public async Task A_child_of_ours_that_has_not_run_exec_is_no_holder_of_a_write_end_we_hold()
    {
        Modes.SkipIfUnavailable(ContainmentMode.Session);
        using var dir = new PidDir();
        await using var tree = await ReadyTree.UntilGoAsync(dir, ContainmentMode.Session);
        using var writeEnd = new FileStream($"/proc/{tree.Pid}/fd/1", FileMode.Open, FileAccess.Write);
        int child = ForkPaused();
        Assert.True(child > 0, "fork failed");
        try
        {
            // It does hold the write end (the premise): a close-on-exec copy, as a child of ours, so the scans pass it
            // over; the same descriptor in a process that is not our child would be its own.
            var held = Assert.Single(PipeHolders.Find(tree.Pid), h => h.Pid == child && h.Stream == OutputStream.StandardOutput);
            byte[] buffer = new byte[512];
            int flags = ProcScanner.DescriptorFlags(child, held.Descriptors[0], ref buffer);
            Assert.True(ProcScanner.IsWrite(flags) && (flags & Interop.Libc.O_CLOEXEC) != 0, $"flags 0{Convert.ToString(flags, 8)}");
            Assert.True(ProcScanner.IsOurCopy(child, flags, ref buffer));
            Assert.False(ProcScanner.IsOurCopy(child, flags & ~Interop.Libc.O_CLOEXEC, ref buffer));
            Assert.False(ProcScanner.IsOurCopy(1, flags, ref buffer));

            ReadyTree.Go(dir);
            var outcome = await tree.Completion;
            Assert.DoesNotContain(outcome.Killed, k => k.Pid == child);
            Assert.True(Proc.IsAlive(child), "our unexecuted child was signalled");
        }
        finally
        {
            kill(child, 9); // our unreaped child: its PID cannot have been reused
            waitpid(child, 0, 0);
        }
    }

    /// <summary>Forks this process; the child only waits in pause(2), never returning to managed code that could allocate.</summary>
    private static int ForkPaused()
    {
        // Bound before the fork, so the child resolves nothing (a loader lock may be held by a thread it does not have).
        foreach (string name in new[] { nameof(fork), nameof(signal), nameof(alarm), nameof(pause) })
            Marshal.Prelink(typeof(UnexecutedChildTests).GetMethod(name, BindingFlags.NonPublic | BindingFlags.Static)!);
        int pid = fork();
        if (pid == 0)
        {
            // The runtime's handlers would forward a signal to this process's signal thread through a pipe the copy
            // shares with it: a SIGTERM sent to the copy would stop the test host. Default dispositions: it dies.
            signal(15, 0);
            signal(18, 0);
            // Dies on its own even if the test host does first (it holds the runner's pipes, which would never end).
            signal(14, 0);
            alarm(300);
            while (true)
                pause();
        }

        return pid;
    }

#pragma warning disable SYSLIB1054 // A plain DllImport, so that Marshal.Prelink binds it before the fork.
    [DllImport("libc")]
    private static extern int fork();

    [DllImport("libc")]
    private static extern int pause();

    [DllImport("libc")]
    private static extern nint signal(int signum, nint handler);

    [DllImport("libc")]
    private static extern uint alarm(uint seconds);

    [DllImport("libc")]
    private static extern int kill(int pid, int signal);

    [DllImport("libc")]
    private static extern int waitpid(int pid, nint status, int options);
#pragma warning restore SYSLIB1054
}

/// <summary>Runs alone: see <see cref="UnexecutedChildTests"/>.</summary>
[CollectionDefinition(UnexecutedChildTests.Name, DisableParallelization = true)]
public sealed class UnexecutedChildCollection;
