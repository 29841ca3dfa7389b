using System.Diagnostics;
using Corral.Processes.Interop;
using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Output;

namespace Corral.Processes.Internal.Teardown;

/// <summary>
/// Optional stdin close → first signal to the whole tree → grace → SIGKILL (or cgroup.kill) → bounded wait.
/// Every step is bounded, so the whole ladder takes at most CloseInputGrace + Grace + KillWait.
/// </summary>
internal static class TeardownLadder
{
    public static async Task<TimeSpan> RunAsync(
        TreeContainment tree, ChildProcess child, TeardownOptions options, StopSignal firstSignal,
        InputPipeStream? stdin, bool includeChild, KillLog log)
    {
        var clock = Stopwatch.StartNew();
        if (firstSignal != StopSignal.Kill && includeChild && options.CloseInputGrace is { } inputGrace && stdin is not null && !child.HasExited)
        {
            await stdin.DisposeAsync().ConfigureAwait(false);
            await Task.WhenAny(child.Exited, Task.Delay(inputGrace)).ConfigureAwait(false);
        }

        if (!await GoneAsync(tree, child, includeChild, TimeSpan.Zero).ConfigureAwait(false))
        {
            await tree.SignalAllAsync((int)firstSignal, log).ConfigureAwait(false);
            if (includeChild)
                child.Signal((int)firstSignal);

            if (!await GoneAsync(tree, child, includeChild, options.Grace).ConfigureAwait(false))
            {
                await tree.KillAllAsync(log).ConfigureAwait(false);
                if (includeChild)
                    child.Signal(Libc.SIGKILL);

                // A respawner may have forked between the listing and the kill: go round again until it is empty.
                var deadline = clock.Elapsed + options.KillWait;
                while (!await GoneAsync(tree, child, includeChild, TimeSpan.FromMilliseconds(200)).ConfigureAwait(false)
                       && clock.Elapsed < deadline)
                {
                    await tree.KillAllAsync(log).ConfigureAwait(false);
                }
            }
        }

        return clock.Elapsed;
    }

    private static async Task<bool> GoneAsync(TreeContainment tree, ChildProcess child, bool includeChild, TimeSpan timeout)
    {
        var start = Stopwatch.GetTimestamp();
        if (!await tree.WaitEmptyAsync(timeout).ConfigureAwait(false))
            return false;
        if (!includeChild || child.HasExited)
            return true;

        // In cgroup mode the child may not have joined its leaf yet (the shim), so wait for it by its pidfd too.
        var left = timeout - Stopwatch.GetElapsedTime(start);
        if (left > TimeSpan.Zero)
            await Task.WhenAny(child.Exited, Task.Delay(left)).ConfigureAwait(false);
        return child.HasExited;
    }
}
