using System.Collections.Concurrent;
using Corral.Processes.Internal.Containment;

namespace Corral.Processes.Internal.Teardown;

/// <summary>Every process signalled during teardown, recorded once, with its command line read before the signal.</summary>
internal sealed class KillLog
{
    private readonly ConcurrentDictionary<int, KilledProcess> _killed = new();

    public void Record(int pid, FoundBy foundBy) =>
        _killed.GetOrAdd(pid, static (p, by) => new KilledProcess(p, ProcScanner.CommandLine(p), by), foundBy);

    public IReadOnlyList<KilledProcess> Snapshot() => _killed.Values.OrderBy(k => k.Pid).ToArray();
}
