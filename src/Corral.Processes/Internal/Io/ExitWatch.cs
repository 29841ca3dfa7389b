using Corral.Processes.Interop;

namespace Corral.Processes.Internal.Io;

/// <summary>
/// Waits, without a thread, for a set of processes to exit: one pidfd per PID, watched by the poll thread. Used
/// between scans so that "is the tree empty yet?" is asked again when the processes seen last have gone, not on a
/// timer. Only waits: nothing is ever signalled through these pidfds, so a recycled PID can only delay the wait.
/// </summary>
internal sealed class ExitWatch : IDisposable
{
    private readonly List<int> _pidfds;
    private readonly List<PollRegistration> _registrations;

    private readonly TaskCompletionSource _allExited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _remaining;

    private ExitWatch()
    {
        _pidfds = [];
        _registrations = [];
    }

    /// <summary>How many processes are watched (PIDs already gone are not).</summary>
    public int Count => _pidfds.Count;

    /// <summary>How many watched processes have not exited yet (as far as the poll thread has seen).</summary>
    public int Remaining => Math.Max(0, Volatile.Read(ref _remaining));

    /// <summary>Completes when every process has exited (at once for PIDs already gone).</summary>
    public Task AllExited => _allExited.Task;

    public static ExitWatch For(IEnumerable<int> pids)
    {
        var pidfds = new List<int>();
        foreach (int pid in pids)
        {
            int pidfd = Libc.pidfd_open(pid);
            if (pidfd >= 0)
                pidfds.Add(pidfd);
        }

        return Adopt(pidfds);
    }

    /// <summary>
    /// Watches pidfds the caller already holds (those a teardown signalled through); the watch owns them from now
    /// on. Those whose process has already exited are closed at once, found by one poll(2) over all of them:
    /// after a burst of signals most have, and each registration would cost the poll thread two epoll_ctl calls.
    /// </summary>
    public static unsafe ExitWatch Adopt(List<int> pidfds)
    {
        var watch = new ExitWatch();
        var ready = new Libc.PollFd[pidfds.Count];
        for (int i = 0; i < ready.Length; i++)
            ready[i] = new Libc.PollFd { Fd = pidfds[i], Events = Libc.POLLIN };
        int n;
        fixed (Libc.PollFd* p = ready)
            n = ready.Length == 0 ? 0 : Libc.poll(p, (nuint)ready.Length, 0);
        for (int i = 0; i < ready.Length; i++)
        {
            if (n > 0 && ready[i].Revents != 0)
                Libc.close(ready[i].Fd);
            else
                watch._pidfds.Add(ready[i].Fd);
        }

        // Counted on the poll thread: a thousand exits cost one task completion, not a thousand.
        watch._remaining = watch._pidfds.Count + 1;
        var onExit = watch.OnExit;
        foreach (int pidfd in watch._pidfds)
        {
            var registration = PollLoop.Shared.Register(pidfd);
            watch._registrations.Add(registration);
            registration.OnReady(Libc.EPOLLIN, onExit);
        }

        watch.OnExit(0);
        return watch;
    }

    private void OnExit(uint events)
    {
        if (Interlocked.Decrement(ref _remaining) == 0)
            _allExited.TrySetResult();
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
            registration.Dispose();
        foreach (int pidfd in _pidfds)
            Libc.close(pidfd);
        _registrations.Clear();
        _pidfds.Clear();
    }
}
