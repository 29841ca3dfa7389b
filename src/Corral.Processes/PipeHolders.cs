using Corral.Processes.Internal.Containment;
using Corral.Processes.Internal.Io;

namespace Corral.Processes;

/// <summary>A process that holds the write end of another process's stdout or stderr pipe.</summary>
/// <param name="Pid">The holder's process id.</param>
/// <param name="CommandLine">Its command line, capped at 200 characters.</param>
/// <param name="Stream">Which of the target's streams the pipe carries.</param>
/// <param name="Descriptors">The holder's descriptors that are the write end of that pipe.</param>
public sealed record PipeHolder(int Pid, string CommandLine, OutputStream Stream, IReadOnlyList<int> Descriptors);

/// <summary>Diagnostics for the question "why does this reader never see EOF?".</summary>
public static class PipeHolders
{
    /// <summary>
    /// Every process (including <paramref name="pid"/> itself) holding the write end of the pipes that are
    /// <paramref name="pid"/>'s stdout and stderr. Empty when those are not pipes. Uses readlink and fdinfo only.
    /// </summary>
    public static IReadOnlyList<PipeHolder> Find(int pid)
    {
        var targets = new List<(OutputStream Stream, string Link)>();
        foreach (var (fd, stream) in new[] { (1, OutputStream.StandardOutput), (2, OutputStream.StandardError) })
        {
            if (Fd.ReadLink($"/proc/{pid}/fd/{fd}") is { } link && link.StartsWith("pipe:", StringComparison.Ordinal)
                && !targets.Exists(t => t.Link == link))
                targets.Add((stream, link));
        }

        var holders = new List<PipeHolder>();
        if (targets.Count == 0)
            return holders;

        byte[] buffer = new byte[1024];
        foreach (int candidate in ProcScanner.AllPids())
        {
            foreach (var (stream, link) in targets)
            {
                var fds = ProcScanner.WriteEndDescriptors(candidate, link, ref buffer);
                if (fds.Count > 0)
                    holders.Add(new PipeHolder(candidate, ProcScanner.CommandLine(candidate), stream, fds));
            }
        }

        return holders;
    }
}
