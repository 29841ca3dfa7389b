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

    private ExitWatch(List<int> pidfds, List<PollRegistration> registrations, Task allExited)
    {
        _pidfds = pidfds;
        _registrations = registrations;
        AllExited = allExited;
    }

    /// <summary>How many processes are watched (PIDs already gone are not).</summary>
    public int Count => _pidfds.Count;

    /// <summary>Completes when every process has exited (at once for PIDs already gone).</summary>
    public Task AllExited { get; }

    public static ExitWatch For(IEnumerable<int> pids)
    {
        var pidfds = new List<int>();
        var registrations = new List<PollRegistration>();
        var waits = new List<Task<uint>>();
        foreach (int pid in pids)
        {
            int pidfd = Libc.pidfd_open(pid);
            if (pidfd < 0)
                continue;
            pidfds.Add(pidfd);
            var registration = PollLoop.Shared.Register(pidfd);
            registrations.Add(registration);
            waits.Add(registration.WaitAsync(Libc.EPOLLIN));
        }

        return new ExitWatch(pidfds, registrations, waits.Count == 0 ? Task.CompletedTask : Task.WhenAll(waits));
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
