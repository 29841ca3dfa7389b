using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Io;

namespace Corral.Processes.Internal.Teardown;

/// <summary>
/// Every process signalled during teardown, recorded once, with its command line read before the signal (a process
/// that has exited has none). Recording happens just before signalling a whole tree, so it keeps only the raw bytes
/// (one read into a shared arena, no strings); they are decoded once, in <see cref="Snapshot"/>.
/// </summary>
/// <remarks>
/// A process that was already exiting when recorded (no memory, so no command line) is shown by its comm in
/// brackets, which survives until it is reaped; its command line is then lost. That takes a process dying on its own
/// in the moment between the listing that found it and the read, since every read comes before any signal.
/// </remarks>
internal sealed class KillLog
{
    /// <summary>Enough bytes for the 200 characters a report keeps (cmdline is read no further).</summary>
    private const int MaxCommandLineBytes = 1024;

    private readonly Lock _gate = new();
    private readonly Dictionary<int, Entry> _killed = [];
    private byte[] _arena = []; // allocated by the first record: most trees end without teardown
    private int _used;

    /// <summary>Where a process's command line lies in the arena; <c>IsComm</c> when it had none (kernel thread or exiting).</summary>
    private readonly record struct Entry(int Offset, int Length, bool IsComm, FoundBy FoundBy);

    public int Count
    {
        get
        {
            lock (_gate)
                return _killed.Count;
        }
    }

    public bool Contains(int pid)
    {
        lock (_gate)
            return _killed.ContainsKey(pid);
    }

    /// <summary>
    /// Records <paramref name="pid"/> (once: later calls keep the first record), reading its command line now. A
    /// process that no longer exists at all is not recorded: there is nothing left to signal, nor to report.
    /// </summary>
    public void Record(int pid, FoundBy foundBy)
    {
        lock (_gate)
        {
            if (_killed.ContainsKey(pid))
                return;
            Reserve(MaxCommandLineBytes);
            int n = ProcFs.ReadOnce(pid, "cmdline"u8, _arena.AsSpan(_used, MaxCommandLineBytes));
            if (n < 0)
                return;
            bool isComm = false;
            if (n == 0)
            {
                // No command line: a kernel thread, or a process already exiting. comm survives until it is reaped.
                n = ProcFs.ReadOnce(pid, "comm"u8, _arena.AsSpan(_used, MaxCommandLineBytes));
                isComm = true;
            }

            n = Math.Max(n, 0);
            _killed.Add(pid, new Entry(_used, n, isComm, foundBy));
            _used += n;
        }
    }

    /// <summary>
    /// Records <paramref name="pid"/> only if it has a command line (so it still has its memory: it is not a
    /// zombie); <c>false</c> if it has none or was recorded already, and then nothing changes.
    /// </summary>
    public bool TryRecordWithCommandLine(int pid, FoundBy foundBy)
    {
        lock (_gate)
        {
            if (_killed.ContainsKey(pid))
                return false;
            Reserve(MaxCommandLineBytes);
            int n = ProcFs.ReadOnce(pid, "cmdline"u8, _arena.AsSpan(_used, MaxCommandLineBytes));
            if (n <= 0)
                return false;
            _killed.Add(pid, new Entry(_used, n, IsComm: false, foundBy));
            _used += n;
            return true;
        }
    }

    public IReadOnlyList<KilledProcess> Snapshot()
    {
        lock (_gate)
        {
            var result = new KilledProcess[_killed.Count];
            int i = 0;
            foreach (var (pid, entry) in _killed)
                result[i++] = new KilledProcess(pid, ProcScanner.DecodeCommandLine(_arena.AsSpan(entry.Offset, entry.Length), entry.IsComm), entry.FoundBy);
            Array.Sort(result, static (a, b) => a.Pid.CompareTo(b.Pid));
            return result;
        }
    }

    private void Reserve(int bytes)
    {
        if (_arena.Length - _used < bytes)
            Array.Resize(ref _arena, Math.Max(Math.Max(_arena.Length * 2, 4096), _used + bytes));
    }
}
