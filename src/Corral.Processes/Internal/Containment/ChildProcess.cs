using Corral.Processes.Interop;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Containment;

/// <summary>How the direct child ended: an exit code or a terminating signal (neither if someone else reaped it).</summary>
internal readonly record struct ChildExit(int? ExitCode, int? Signal);

/// <summary>
/// The direct child through its pidfd. It is deliberately left a zombie until <see cref="Reap"/>: while the zombie
/// exists its PID, and so the tree's session and process-group id, cannot be reused by anyone else.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly PollRegistration _poll;
    private int _pidfd;
    private ChildExit? _exit;

    /// <param name="pid">Our child, not yet reaped.</param>
    /// <param name="pidfd">Its pidfd if the spawn made one (ownership passes here), otherwise -1.</param>
    public ChildProcess(int pid, int pidfd = -1)
    {
        Pid = pid;
        _pidfd = pidfd >= 0 ? pidfd : Libc.pidfd_open(pid);
        if (_pidfd < 0)
            throw new ProcessSpawnException(SpawnFailure.SystemError, $"pid {pid}", "pidfd_open failed (Linux 5.3+ is required): " + Libc.Describe(Libc.LastError), Libc.LastError);
        _poll = PollLoop.Shared.Register(_pidfd);
        Exited = WatchAsync();
    }

    public int Pid { get; }

    /// <summary>Completes when the child has exited (it is then a zombie, not yet reaped).</summary>
    public Task<ChildExit> Exited { get; }

    public bool HasExited => Exited.IsCompleted;

    /// <summary>Signals the child through its pidfd: never a recycled PID.</summary>
    public bool Signal(int signal) => _pidfd >= 0 && !HasExited && Libc.pidfd_send_signal(_pidfd, signal) == 0;

    private async Task<ChildExit> WatchAsync()
    {
        while (true)
        {
            if (Peek() is { } exit)
                return exit;
            await _poll.WaitAsync(Libc.EPOLLIN).ConfigureAwait(false);
        }
    }

    private unsafe ChildExit? Peek()
    {
        byte* info = stackalloc byte[Libc.SigInfoSize];
        new Span<byte>(info, Libc.SigInfoSize).Clear();
        if (Libc.waitid(Libc.P_PIDFD, _pidfd, info, Libc.WEXITED | Libc.WNOHANG | Libc.WNOWAIT) != 0)
        {
            // ECHILD: someone reaped it (SIGCHLD ignored by our parent); the pidfd readiness still tells us it ended.
            return Libc.LastError == Libc.EINTR ? null : new ChildExit(null, null);
        }

        var (pid, code, status) = Libc.ReadChildInfo(info);
        return pid == 0 ? null : Decode(code, status);
    }

    private static ChildExit Decode(int code, int status) =>
        code == Libc.CLD_EXITED ? new ChildExit(status, null) : new ChildExit(null, status);

    /// <summary>Collects the exit status and releases the PID. Call only when nothing more will be signalled by group.</summary>
    public unsafe ChildExit Reap()
    {
        if (_exit is { } known)
            return known;
        var exit = Exited.IsCompleted ? Exited.Result : new ChildExit(null, null);
        byte* info = stackalloc byte[Libc.SigInfoSize];
        new Span<byte>(info, Libc.SigInfoSize).Clear();
        int rc;
        do
            rc = Libc.waitid(Libc.P_PIDFD, _pidfd, info, Libc.WEXITED | (Exited.IsCompleted ? 0 : Libc.WNOHANG));
        while (rc != 0 && Libc.LastError == Libc.EINTR);
        if (rc == 0 && Libc.ReadChildInfo(info) is var (pid, code, status) && pid != 0)
            exit = Decode(code, status);
        _exit = exit;
        return exit;
    }

    public void Dispose()
    {
        _poll.Dispose();
        Fd.Close(ref _pidfd);
    }
}
