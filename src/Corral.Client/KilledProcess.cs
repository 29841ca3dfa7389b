namespace Corral.Client;

/// <summary>A process of the tree that was still there at teardown and was killed.</summary>
/// <param name="Pid">Its PID on the server.</param>
/// <param name="Command">Its command line.</param>
/// <param name="FoundBy">How it was found: <c>cgroup</c>, <c>processGroup</c>, <c>pipeHolder</c>, <c>environmentTag</c> or <c>uid</c>.</param>
public sealed record KilledProcess(int Pid, string? Command, string? FoundBy);
