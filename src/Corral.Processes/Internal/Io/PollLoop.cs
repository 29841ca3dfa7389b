using System.Collections.Concurrent;
using Corral.Processes.Interop;

namespace Corral.Processes.Internal.Io;

/// <summary>
/// One background thread blocked in epoll_wait for every pidfd, pipe and cgroup.events file Corral watches,
/// so a thousand trees cost one thread rather than three thousand blocked reads.
/// </summary>
internal sealed unsafe class PollLoop
{
    private const int MaxEvents = 256;
    private static readonly Lazy<PollLoop> s_shared = new(() => new PollLoop());

    private readonly int _epollFd;
    private readonly ConcurrentDictionary<long, PollRegistration> _registrations = new();
    private long _nextId;

    public static PollLoop Shared => s_shared.Value;

    private PollLoop()
    {
        _epollFd = Libc.epoll_create1(Libc.EPOLL_CLOEXEC);
        if (_epollFd < 0)
            throw new InvalidOperationException($"epoll_create1 failed: {Libc.Describe(Libc.LastError)}");
        new Thread(Run) { IsBackground = true, Name = "corral-poll" }.Start();
    }

    /// <summary>Watches <paramref name="fd"/>; the caller keeps ownership of the descriptor and must dispose the registration before closing it.</summary>
    public PollRegistration Register(int fd) => new(this, fd, Interlocked.Increment(ref _nextId));

    internal void Arm(PollRegistration registration, bool added, uint events)
    {
        _registrations[registration.Id] = registration;
        int op = added ? Libc.EPOLL_CTL_MOD : Libc.EPOLL_CTL_ADD;
        if (Libc.EpollControl(_epollFd, op, registration.Fd, events | Libc.EPOLLONESHOT, registration.Id) != 0)
        {
            int errno = Libc.LastError;
            throw new IOException($"epoll_ctl({registration.Fd}) failed: {Libc.Describe(errno)}");
        }
    }

    internal void Remove(PollRegistration registration, bool added)
    {
        _registrations.TryRemove(registration.Id, out _);
        if (added)
            Libc.EpollControl(_epollFd, Libc.EPOLL_CTL_DEL, registration.Fd, 0, 0);
    }

    private void Run()
    {
        byte* events = stackalloc byte[MaxEvents * 16];
        while (true)
        {
            int n = Libc.epoll_wait(_epollFd, events, MaxEvents, -1);
            if (n < 0)
            {
                if (Libc.LastError == Libc.EINTR)
                    continue;
                Environment.FailFast($"corral-poll: epoll_wait failed: {Libc.Describe(Libc.LastError)}");
            }

            for (int i = 0; i < n; i++)
            {
                byte* ev = events + i * Libc.EpollEventSize;
                uint mask = *(uint*)ev;
                long id = *(long*)(ev + Libc.EpollDataOffset);
                if (_registrations.TryGetValue(id, out var registration))
                    registration.Signal(mask);
            }
        }
    }
}

/// <summary>
/// A one-shot readiness wait on one descriptor. Wake-ups may be spurious (a cancelled wait leaves the descriptor
/// armed), so callers always re-check the condition they wait for.
/// </summary>
internal sealed class PollRegistration : IDisposable
{
    private readonly PollLoop _loop;
    private readonly Lock _gate = new();
    private TaskCompletionSource<uint>? _pending;
    private Action<uint>? _callback;
    private bool _added;
    private bool _disposed;

    internal PollRegistration(PollLoop loop, int fd, long id)
    {
        _loop = loop;
        Fd = fd;
        Id = id;
    }

    public int Fd { get; }

    public long Id { get; }

    /// <summary>Completes when the descriptor reports one of <paramref name="events"/> (or HUP/ERR).</summary>
    public Task<uint> WaitAsync(uint events)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var tcs = new TaskCompletionSource<uint>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending = tcs;
            _loop.Arm(this, _added, events);
            _added = true;
            return tcs.Task;
        }
    }

    /// <summary>
    /// Like <see cref="WaitAsync"/>, but calls <paramref name="callback"/> on the poll thread (once, when the descriptor is
    /// ready): for many registrations whose readiness only needs counting, so each costs no task and no thread-pool hop.
    /// The callback must be tiny and must not block.
    /// </summary>
    public void OnReady(uint events, Action<uint> callback)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _callback = callback;
            _loop.Arm(this, _added, events);
            _added = true;
        }
    }

    internal void Signal(uint events)
    {
        Interlocked.Exchange(ref _pending, null)?.TrySetResult(events);
        Interlocked.Exchange(ref _callback, null)?.Invoke(events);
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
                return;
            _disposed = true;
            _loop.Remove(this, _added);
            Interlocked.Exchange(ref _pending, null)?.TrySetResult(0);
            _callback = null;
        }
    }
}
