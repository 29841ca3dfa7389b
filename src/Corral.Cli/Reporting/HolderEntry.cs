using Corral.Processes;

namespace Corral.Cli.Reporting;

/// <summary>One line of <c>corral holders --json</c>.</summary>
internal sealed record HolderEntry(int Pid, OutputStream Stream, IReadOnlyList<int> Descriptors, string Command);
