using System.Runtime.InteropServices;
using Corral.Processes;

namespace Corral.Cli.Running;

/// <summary>
/// Turns SIGINT, SIGTERM and SIGHUP sent to corral into the start of the tree's teardown ladder, so corral
/// survives them, waits for the tree to be gone, and exits with the child's status.
/// </summary>
/// <remarks>
/// Registered before the tree starts so no signal can kill corral and orphan a running tree; a request that
/// arrives before <see cref="Attach"/> is held and applied then.
/// </remarks>
internal sealed class StopForwarder : IDisposable
{
    private readonly Lock _gate = new();
    private readonly List<PosixSignalRegistration> _registrations = [];
    private ProcessTree? _tree;
    private StopSignal? _pending;

    public StopForwarder()
    {
        Register(PosixSignal.SIGINT, StopSignal.Interrupt);
        Register(PosixSignal.SIGTERM, StopSignal.Terminate);
        Register(PosixSignal.SIGHUP, StopSignal.Hangup);
    }

    /// <summary>Starts the ladder with <paramref name="signal"/> (now, or as soon as the tree is attached). Only the first request counts.</summary>
    public void Request(StopSignal signal)
    {
        ProcessTree? tree;
        lock (_gate)
        {
            tree = _tree;
            if (tree is null)
            {
                _pending ??= signal;
                return;
            }
        }

        tree.Cancel(signal);
    }

    public void Attach(ProcessTree tree)
    {
        StopSignal? pending;
        lock (_gate)
        {
            _tree = tree;
            pending = _pending;
        }

        if (pending is { } signal)
            tree.Cancel(signal);
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
            registration.Dispose();
    }

    private void Register(PosixSignal posix, StopSignal stop) =>
        _registrations.Add(PosixSignalRegistration.Create(posix, context =>
        {
            // Not the default action (terminate corral): the tree is torn down and corral reports how it ended.
            context.Cancel = true;
            Request(stop);
        }));
}
